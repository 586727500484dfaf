"""The porting kit: convert a TensorFlow-1 model to JAX automatically and judge any port of it.

Public API: :func:`from_tf` (tf2jax underneath) -> :class:`Converted` ``(fn, params)``;
:func:`judge` -> :class:`Verdict`, against an :class:`Oracle` (built from the automatic
conversion when none is given); :func:`x64`, the scoped float64 switch; :class:`TFGraph`, a
``tf.compat.v1`` graph builder made callable (a reference for ``judge``); :class:`GraphSpec`;
:class:`ConversionError`.
``unirep_port.porting.unirep`` converts the project's own reference graph (``auto_port``).
"""

from unirep_port.porting.convert import (
    ConversionError,
    Converted,
    GraphSpec,
    TFGraph,
    from_tf,
    x64,
)
from unirep_port.porting.judge import Oracle, Verdict, judge

__all__ = [
    "ConversionError",
    "Converted",
    "GraphSpec",
    "Oracle",
    "TFGraph",
    "Verdict",
    "from_tf",
    "judge",
    "x64",
]
