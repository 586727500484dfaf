"""The multiplicative-LSTM cells of UniRep as TF1 ``RNNCell`` subclasses.

:class:`MLSTMCell` mirrors ``mLSTMCell1900.call`` and ``mLSTMCell.call`` of churchlab/UniRep
``unirep.py`` (L75-126 and L176-218): the weight-normalised multiplicative LSTM. :class:`MLSTMStack`
mirrors ``mLSTMCellStackNPY`` (L220-309) without dropout or residual connections (the published
256 and 64 models use neither).

Variables are created with ``tf.compat.v1.get_variable`` under the original scopes, so that the
graph's trainable variables carry exactly the canonical names of ``unirep_port.sizes``:
``rnn/mlstm/mlstm/<p>`` (1900) and ``rnn/mlstm_stack/mlstm_stack{i}/mlstm_stack{i}/<p>``
(256/64). ``rnn`` is the scope of ``dynamic_rnn``; the first ``mlstm`` is the cell layer's own
scope (its name) and the second the ``variable_scope(self._scope)`` inside ``call``, as in the
original. Initial values are the given arrays, as the original initialised from ``.npy`` files.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from unirep_port.sizes import CELL_PARAMS

v1 = tf.compat.v1


class MLSTMCell(v1.nn.rnn_cell.RNNCell):
    """One weight-normalised mLSTM cell; state is the tuple ``(c, h)``, output is ``h``.

    Mirrors ``mLSTMCell1900`` / ``mLSTMCell`` (unirep.py L43-126, L128-218).

    Args:
        num_units: hidden width H (1900, 256 or 64).
        init: the nine initial arrays ``wx wh wmx wmh b gx gh gmx gmh`` keyed by those short
            names, TF layout (``x @ w``): wx (n_in, 4H), wh (H, 4H), wmx (n_in, H), wmh (H, H),
            b/gx/gh (4H,), gmx/gmh (H,).
        scope: variable scope; also the layer name, giving ``<outer>/<scope>/<scope>/<p>``.
    """

    def __init__(self, num_units: int, init: Mapping[str, np.ndarray], scope: str = "mlstm"):
        super().__init__(name=scope)
        missing = [p for p in CELL_PARAMS if p not in init]
        if missing:
            raise KeyError(f"mLSTM cell {scope!r}: missing initial arrays {missing}")
        self._num_units = int(num_units)
        self._init = {p: np.asarray(init[p], dtype=np.float32) for p in CELL_PARAMS}
        self._scope = scope

    @property
    def state_size(self):
        """``(c, h)`` widths (unirep.py L61-64)."""
        return (self._num_units, self._num_units)

    @property
    def output_size(self):
        """The output is h (unirep.py L66-69)."""
        return self._num_units

    def zero_state(self, batch_size, dtype=tf.float32):
        """Zero ``(c, h)``, each (batch_size, H) (unirep.py L70-73)."""
        c = tf.zeros([batch_size, self._num_units], dtype=dtype)  # (B, H)
        h = tf.zeros([batch_size, self._num_units], dtype=dtype)  # (B, H)
        return (c, h)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, state):
        """One step; mirrors unirep.py L75-126 (``mLSTMCell1900.call``).

        Args:
            inputs: (B, n_in) float32, the embedding (layer 0) or the previous layer's h.
            state: ``(c_prev, h_prev)``, each (B, H).

        Returns:
            ``h, (c, h)`` with h, c of shape (B, H).
        """
        c_prev, h_prev = state
        with v1.variable_scope(self._scope):
            w = {p: v1.get_variable(p, initializer=self._init[p]) for p in CELL_PARAMS}
        # Weight normalisation over the input axis (unirep.py L112-116).
        wx = tf.nn.l2_normalize(w["wx"], axis=0) * w["gx"]  # (n_in, 4H) * (4H,) -> (n_in, 4H)
        wh = tf.nn.l2_normalize(w["wh"], axis=0) * w["gh"]  # (H, 4H) * (4H,) -> (H, 4H)
        wmx = tf.nn.l2_normalize(w["wmx"], axis=0) * w["gmx"]  # (n_in, H) * (H,) -> (n_in, H)
        wmh = tf.nn.l2_normalize(w["wmh"], axis=0) * w["gmh"]  # (H, H) * (H,) -> (H, H)
        # (B, n_in) @ (n_in, H) -> (B, H);  (B, H) @ (H, H) -> (B, H);  product (B, H)
        m = tf.matmul(inputs, wmx) * tf.matmul(h_prev, wmh)
        # (B, n_in) @ (n_in, 4H) + (B, H) @ (H, 4H) + (4H,) -> (B, 4H)
        z = tf.matmul(inputs, wx) + tf.matmul(m, wh) + w["b"]
        i, f, o, u = tf.split(z, 4, 1)  # 4 x (B, H), in this order (unirep.py L119)
        i = tf.nn.sigmoid(i)
        f = tf.nn.sigmoid(f)
        o = tf.nn.sigmoid(o)
        u = tf.tanh(u)
        c = f * c_prev + i * u  # (B, H)
        h = o * tf.tanh(c)  # (B, H)
        return h, (c, h)


class MLSTMStack(v1.nn.rnn_cell.RNNCell):
    """Stacked mLSTM cells; state ``((c0..cL-1), (h0..hL-1))``, output the last layer's h.

    Mirrors ``mLSTMCellStackNPY`` (unirep.py L220-309) with ``dropout=None`` and
    ``res_connect=False``: layer 0 reads the embedding, layer i > 0 reads layer i-1's h.

    Args:
        num_units: hidden width H of every layer (256 or 64).
        inits: one mapping of the nine short-named arrays per layer (see :class:`MLSTMCell`).
        scope: the stack's scope; layer i uses ``<scope><i>``.
    """

    def __init__(
        self, num_units: int, inits: list[Mapping[str, np.ndarray]], scope: str = "mlstm_stack"
    ):
        super().__init__(name=scope)
        self._num_units = int(num_units)
        self._num_layers = len(inits)
        self._layers = [
            MLSTMCell(num_units, init, scope=f"{scope}{i}") for i, init in enumerate(inits)
        ]

    @property
    def state_size(self):
        """Per-layer c widths and h widths (unirep.py L266-272)."""
        sizes = tuple(self._num_units for _ in range(self._num_layers))
        return (sizes, sizes)

    @property
    def output_size(self):
        return self._num_units

    def zero_state(self, batch_size, dtype=tf.float32):
        """Zero states, each (batch_size, H) (unirep.py L278-281)."""
        cs = tuple(tf.zeros([batch_size, self._num_units], dtype=dtype) for _ in self._layers)
        hs = tuple(tf.zeros([batch_size, self._num_units], dtype=dtype) for _ in self._layers)
        return (cs, hs)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, state):
        """One step through all layers; mirrors unirep.py L283-309.

        Args:
            inputs: (B, 10) embedded tokens.
            state: ``(cs, hs)``, tuples of L arrays (B, H).

        Returns:
            ``h_last, (new_cs, new_hs)``.
        """
        c_prev, h_prev = state
        x = inputs  # (B, 10) for layer 0, then (B, H)
        new_cs, new_hs = [], []
        for i, layer in enumerate(self._layers):
            x, (c, h) = layer(x, (c_prev[i], h_prev[i]))  # (B, H) each
            new_cs.append(c)
            new_hs.append(h)
        return x, (tuple(new_cs), tuple(new_hs))
