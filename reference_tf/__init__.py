"""The TF1 graph-mode reference of UniRep, run on TensorFlow 2.21 through ``tf.compat.v1``.

The legacy RNN cells and ``dynamic_rnn`` come from tf-keras, which TensorFlow only uses when
``TF_USE_LEGACY_KERAS=1`` is set; this package sets it (and quiets TF's C++ logging and start-up
banners: ``unirep_port.tfstart``) before TensorFlow is imported. If TensorFlow was already
imported in a way that hides the legacy cells, importing this package raises a ``RuntimeError``
that says what to do.

Public API: :class:`Babbler` (one graph per model, the original ``get_rep``/``get_babble`` and a
batched ``run_batch``), the original-style classes :class:`babbler1900`, :class:`babbler256`,
:class:`babbler64`, the cells :class:`MLSTMCell` and :class:`MLSTMStack`, and :func:`reps`.
This package never imports jax.
"""

from __future__ import annotations

import os
import sys

from unirep_port.tfstart import import_tensorflow

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _check_legacy_keras() -> None:
    """Raise a clear RuntimeError when TF's v1 RNN cells are not the tf-keras legacy ones."""
    tf = import_tensorflow()

    try:
        cell = tf.compat.v1.nn.rnn_cell.RNNCell
    except (AttributeError, ImportError) as err:
        raise RuntimeError(
            "reference_tf needs the legacy TF1 RNN cells from tf-keras, but TensorFlow answered: "
            f"{err}. Set the environment variable TF_USE_LEGACY_KERAS=1 before anything imports "
            "tensorflow (e.g. `export TF_USE_LEGACY_KERAS=1`, or import reference_tf first), and "
            "install the reference (tensorflow and tf-keras, one command): "
            "pip install 'unirep-port[reference]'."
        ) from err
    if not cell.__module__.startswith("tf_keras"):
        raise RuntimeError(
            f"tf.compat.v1.nn.rnn_cell.RNNCell comes from {cell.__module__}, not tf_keras; "
            "set TF_USE_LEGACY_KERAS=1 before tensorflow is first imported"
        )


if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise RuntimeError(
        "tensorflow was imported before reference_tf with TF_USE_LEGACY_KERAS="
        f"{os.environ.get('TF_USE_LEGACY_KERAS')!r}; the TF1 reference needs "
        "TF_USE_LEGACY_KERAS=1 set before the first tensorflow import"
    )
_check_legacy_keras()

from unirep_port.reference_tf.babbler import (  # noqa: E402
    Babbler,
    babbler64,
    babbler256,
    babbler1900,
    reps,
)
from unirep_port.reference_tf.cell import MLSTMCell, MLSTMStack  # noqa: E402

__all__ = [
    "Babbler",
    "MLSTMCell",
    "MLSTMStack",
    "babbler1900",
    "babbler256",
    "babbler64",
    "reps",
]
