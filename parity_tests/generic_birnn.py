"""A bidirectional GRU the kit has never seen: TF reference, JAX ports, planted bugs.

The reference is a ``tf.function``: a width-3 ``conv1d`` (8 -> 16 features, SAME, tanh), then
``tf.compat.v1.nn.bidirectional_dynamic_rnn`` over two library ``GRUCell(16)`` with
``sequence_length`` (its backward pass reverses each row's valid prefix with
``tf.reverse_sequence``, an op tf2jax 0.3.8 lacks and the kit converts), the two directions
concatenated, then additive attention pooling over the valid positions. Outputs:
``states (B, T, 32)`` (time axis 1, zero past each length) and ``pooled (B, 32)``.

The JAX port follows ``GRUCell.call`` (tf_keras ``layers/legacy_rnn/rnn_cell_impl.py``: gates
``[r, u] = sigmoid([x, h] @ W_g + b_g)``, candidate ``tanh([x, r * h] @ W_c + b_c)``, new state
``u * h + (1 - u) * c``) and ``bidirectional_dynamic_rnn`` (the backward cell runs on the
reversed valid prefix, its outputs reversed back).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port.parity import generic_models as gm
from unirep_port.parity.generic_models import _legacy_cells
from unirep_port.porting import tap
from unirep_port.tfstart import import_tensorflow

FEATURES, CONV, HIDDEN, ATT, MAX_T = 8, 16, 16, 16, 16
NAMES, TIME_AXIS = ("states", "pooled"), (1, None)
TAPS = {"conv": ("birnn/conv:0", 1), "states": ("birnn/states:0", 1)}

VARIANTS = {
    "gru_split_matmul": ("rewrite", "gates as x @ W_x + h @ W_h, not one matmul of [x, h]"),
    "sigmoid_via_tanh": ("rewrite", "gates' sigmoid as 0.5 * tanh(x / 2) + 0.5"),
    "reverse_by_roll": ("rewrite", "per-row reversal as a flip then a roll by T - length"),
    "attention_where": ("rewrite", "attention mask by where(mask, e, -inf), not + -1e9"),
    "bw_no_lengths": ("bug", "backward direction flips the whole padded row (no lengths)"),
    "gru_reset_after": ("bug", "reset gate applied after the recurrent matmul (cuDNN/PyTorch)"),
    "bias_off_1e-4": ("bug", "gate bias off by 1e-4"),
    "weights_float16": ("bug", "weights round-tripped through float16"),
    "attention_over_padding": ("bug", "attention pooling over padding positions"),
}


def reference(seed: int = 0):
    """The model as a ``tf.function(features (B, T, 8) float32, lengths (B,) int32)``."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    conv_w = tf.Variable(rng.normal(0, 0.4, (3, FEATURES, CONV)).astype(np.float32), name="conv_w")
    conv_b = tf.Variable(rng.normal(0, 0.1, CONV).astype(np.float32), name="conv_b")
    att_w = tf.Variable(rng.normal(0, 0.2, (2 * HIDDEN, ATT)).astype(np.float32), name="att_w")
    att_b = tf.Variable(rng.normal(0, 0.1, ATT).astype(np.float32), name="att_b")
    att_v = tf.Variable(rng.normal(0, 0.5, ATT).astype(np.float32), name="att_v")
    with _legacy_cells():
        cells = [
            v1.nn.rnn_cell.GRUCell(
                HIDDEN,
                kernel_initializer=v1.glorot_uniform_initializer(seed=seed + k),
                bias_initializer=v1.random_normal_initializer(0, 0.1, seed + k),
                name=name,
            )
            for k, name in enumerate(("fw", "bw"))
        ]

    @tf.function(autograph=False)
    def ref(features, lengths):
        with tf.name_scope("birnn"):
            x = tf.identity(tf.tanh(tf.nn.conv1d(features, conv_w, 1, "SAME") + conv_b), "conv")
            (fw, bw), _ = v1.nn.bidirectional_dynamic_rnn(
                cells[0], cells[1], x, sequence_length=lengths, dtype=tf.float32
            )
            h = tf.identity(tf.concat([fw, bw], -1), "states")  # (B, T, 2H)
            e = tf.tensordot(tf.tanh(tf.tensordot(h, att_w, 1) + att_b), att_v, 1)  # (B, T)
            mask = tf.sequence_mask(lengths, tf.shape(h)[1], dtype=tf.float32)
            a = tf.nn.softmax(e + (1.0 - mask) * -1e9, axis=-1)  # (B, T)
            return h, tf.reduce_sum(a[..., None] * h, 1)

    feats, lengths = example_inputs(np.random.default_rng(0), 1, 4)[0]
    with _legacy_cells():
        ref(feats, lengths)  # build the cells' variables
    ref.variables_by_name = {  # what generic_models.weights_of reads
        v.name.split(":")[0]: v
        for v in [conv_w, conv_b, att_w, att_b, att_v, *cells[0].variables, *cells[1].variables]
    }
    return ref


def example_inputs(rng: np.random.Generator, n: int, t: int = MAX_T, batch: int = 3):
    """``n`` batches ``(features (B, T, 8) float32, lengths (B,) int32)``, first row full."""
    return gm.example_features(rng, n, t, batch, features=FEATURES)


def _one(w, prefix):
    hits = {
        k.split("/")[-2] + "/" + k.split("/")[-1]: v for k, v in w.items() if f"/{prefix}/" in k
    }
    return (
        hits["gates/kernel"],
        hits["gates/bias"],
        hits["candidate/kernel"],
        hits["candidate/bias"],
    )


def _reverse(x, lengths, variant):
    """Reverse each row's first ``lengths[b]`` steps along axis 1 (``tf.reverse_sequence``)."""
    t = x.shape[1]
    if variant == "bw_no_lengths":
        return x[:, ::-1]
    if variant == "reverse_by_roll":
        return jax.vmap(lambda r, n: jnp.roll(r[::-1], n - t, axis=0))(x, lengths)
    pos = jnp.arange(t)[None, :]  # (1, T)
    idx = jnp.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)  # (B, T)
    return jnp.take_along_axis(x, idx[..., None], axis=1)


def port(w: dict[str, np.ndarray], variant: str | None = None):
    """The JAX port: ``fn(features, lengths) -> (states (B, T, 32), pooled (B, 32))``."""
    if variant == "weights_float16":
        w = {k: v.astype(np.float16).astype(np.float32) for k, v in w.items()}
    w = {k: jnp.asarray(v) for k, v in w.items()}
    dirs = [_one(w, d) for d in ("fw", "bw")]

    def gru(params, x, lengths):
        wg, bg, wc, bc = params  # (C+H, 2H), (2H,), (C+H, H), (H,)
        bg = bg + (1e-4 if variant == "bias_off_1e-4" else 0.0)

        def step(h, inp):
            x_t, t = inp
            if variant == "gru_split_matmul":
                g = jax.nn.sigmoid(x_t @ wg[:CONV] + h @ wg[CONV:] + bg)
            else:
                g = jax.nn.sigmoid(jnp.concatenate([x_t, h], -1) @ wg + bg)  # (B, 2H)
            if variant == "sigmoid_via_tanh":
                z = jnp.concatenate([x_t, h], -1) @ wg + bg
                g = 0.5 * jnp.tanh(0.5 * z) + 0.5
            r, u = jnp.split(g, 2, -1)
            if variant == "gru_reset_after":
                c = jnp.tanh(x_t @ wc[:CONV] + r * (h @ wc[CONV:]) + bc)
            else:
                c = jnp.tanh(jnp.concatenate([x_t, r * h], -1) @ wc + bc)  # (B, H)
            live = (t < lengths)[:, None]
            new = jnp.where(live, u * h + (1 - u) * c, h)
            return new, jnp.where(live, new, 0.0)

        h0 = jnp.zeros((x.shape[0], HIDDEN), jnp.float32)
        _, out = jax.lax.scan(step, h0, (x.swapaxes(0, 1), jnp.arange(x.shape[1])))
        return out.swapaxes(0, 1)  # (B, T, H)

    @jax.jit
    def fn(features, lengths):
        x = jax.lax.conv_general_dilated(  # (B, T, 8) * (3, 8, 16) -> (B, T, 16), SAME
            features, w["conv_w"], (1,), [(1, 1)], dimension_numbers=("NWC", "WIO", "NWC")
        )
        x = tap("conv", jnp.tanh(x + w["conv_b"]))
        fw = gru(dirs[0], x, lengths)
        bw = _reverse(gru(dirs[1], _reverse(x, lengths, variant), lengths), lengths, variant)
        h = tap("states", jnp.concatenate([fw, bw], -1))  # (B, T, 2H)
        e = jnp.tanh(h @ w["att_w"] + w["att_b"]) @ w["att_v"]  # (B, T)
        mask = jnp.arange(h.shape[1])[None, :] < lengths[:, None]
        if variant == "attention_where":
            e = jnp.where(mask, e, -jnp.inf)
        elif variant != "attention_over_padding":
            e = e + (1.0 - mask) * -1e9
        a = jax.nn.softmax(e, -1)
        return h, jnp.einsum("bt,btd->bd", a, h)

    return fn
