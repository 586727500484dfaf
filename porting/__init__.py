"""The porting kit: convert a TensorFlow-1 model to JAX automatically and judge any port of it.

Public API:

* :func:`from_tf` (tf2jax plus the kit's rules for the ops it lacks) -> :class:`Converted`
  ``(fn, params)``; :func:`register_op` adds a conversion rule of your own;
* :func:`judge` -> :class:`Verdict` (per output and place, in bulk, with its power), against an
  oracle: the automatic conversion's float64 twin (:class:`AutoOracle`), TF's own float64 twin
  (:class:`TFOracle`), or one of your own (:class:`Oracle`);
* :func:`tap` marks a hand port's intermediates, which a failing verdict localises;
* :func:`assert_port` (``unirep_port.porting.testing``) fails a test with the report;
* :func:`x64`, the scoped float64 switch; :class:`TFGraph`, a ``tf.compat.v1`` graph builder made
  callable; :class:`GraphSpec`; :class:`ConversionError`, :class:`OracleError`;
* :mod:`unirep_port.porting.drift`: the statistics every bound comes from.

``unirep_port.porting.unirep`` converts the project's own reference graph (``auto_port``).
"""

from unirep_port.porting.convert import (
    ConversionError,
    Converted,
    GraphSpec,
    TFGraph,
    from_tf,
    graph_spec_of,
    x64,
)
from unirep_port.porting.judge import Oracle, judge
from unirep_port.porting.ops import register_op, unregister_op
from unirep_port.porting.oracles import AutoOracle
from unirep_port.porting.taps import tap
from unirep_port.porting.testing import assert_port
from unirep_port.porting.tforacle import OracleError, TFOracle
from unirep_port.porting.verdict import LeafResult, TapResult, Verdict

__all__ = [
    "AutoOracle",
    "ConversionError",
    "Converted",
    "GraphSpec",
    "LeafResult",
    "Oracle",
    "OracleError",
    "TFGraph",
    "TFOracle",
    "TapResult",
    "Verdict",
    "assert_port",
    "from_tf",
    "graph_spec_of",
    "judge",
    "register_op",
    "tap",
    "unregister_op",
    "x64",
]
