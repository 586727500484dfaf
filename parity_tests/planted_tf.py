"""Changes a TensorFlow / Keras upgrade could bring to the reference, planted to prove the drift
alarm (``golden.drift_alarm``) hears them.

Each change builds a real reference graph (``reference_tf.Babbler``) that computes a slightly
different function, the way an upgrade could: Keras 2's ``hard_sigmoid`` as the gate activation
(its old recurrent default), a forget-gate bias of +1 (Keras' ``unit_forget_bias``), a nonzero
initial state, padding no longer masked (``dynamic_rnn`` without ``sequence_length``, so the final
state is read past each sequence's end), and an embedding lookup shifted by one row. Nothing is
patched outside the ``with`` block: the graph is built inside it, then everything is restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from unittest import mock

import numpy as np

from unirep_port.sizes import EMBED_KEY, get_size

CHANGES = ("hard_sigmoid", "forget_bias", "initial_state", "unmasked_padding", "embedding_shift")
INITIAL_STATE = 1e-3  # the planted initial value of every c and h unit


@contextlib.contextmanager
def planted_reference(change: str, params: Mapping[str, np.ndarray], size: int) -> Iterator[object]:
    """A reference ``Babbler`` on ``params`` with one of :data:`CHANGES` built into its graph."""
    import tensorflow as tf

    from unirep_port import reference_tf
    from unirep_port.reference_tf import cell, graph

    if change not in CHANGES:
        raise ValueError(f"unknown planted change {change!r}; known: {', '.join(CHANGES)}")
    params = dict(params)
    m = get_size(size)
    patches: list = []
    if change == "hard_sigmoid":  # Keras 2: clip(0.2 x + 0.5, 0, 1)
        patches.append(
            mock.patch.object(
                tf.nn, "sigmoid", lambda x, name=None: tf.clip_by_value(0.2 * x + 0.5, 0.0, 1.0)
            )
        )
    elif change == "forget_bias":  # z = [i, f, o, u]: +1 on f, every layer
        for layer in range(m.n_layers):
            key = m.cell_key(layer, "b")
            b = np.array(params[key], np.float32)
            b[m.hidden : 2 * m.hidden] += 1.0
            params[key] = b
    elif change == "initial_state":

        def filled(self, batch_size, dtype=tf.float32):
            one = lambda: tf.fill([batch_size, self._num_units], INITIAL_STATE)  # noqa: E731
            n = getattr(self, "_num_layers", None)
            if n is None:
                return (one(), one())
            return (tuple(one() for _ in range(n)), tuple(one() for _ in range(n)))

        patches += [
            mock.patch.object(cell.MLSTMCell, "zero_state", filled),
            mock.patch.object(cell.MLSTMStack, "zero_state", filled),
        ]
    elif change == "unmasked_padding":
        real = tf.compat.v1.nn.dynamic_rnn

        def unmasked(*args, sequence_length=None, **kw):
            return real(*args, **kw)

        patches.append(mock.patch.object(graph.v1.nn, "dynamic_rnn", unmasked))
    elif change == "embedding_shift":  # id t now reads the row of t - 1
        params[EMBED_KEY] = np.roll(np.asarray(params[EMBED_KEY], np.float32), 1, axis=0)
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        babbler = reference_tf.Babbler(params, size=size)
    try:
        yield babbler
    finally:
        babbler.close()
