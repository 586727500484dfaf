"""Two TF1 models that are not UniRep, their hand-written JAX ports, and planted porting bugs.

The proof that ``unirep_port.porting.judge`` is generic. Both references are ``tf.function``s
running the library's own cells (tf-keras legacy ``tf.compat.v1.nn.rnn_cell``) through
``tf.compat.v1.nn.dynamic_rnn`` with ``sequence_length``, on seeded random weights:

* :func:`lstm_lm`: token embedding (25 -> 32), two stacked ``LSTMCell(512)`` (``MultiRNNCell``),
  a dense layer to 25 logits; returns ``(logits (B, T, 25), h_final (B, 512))``.
* :func:`gru_encoder`: one ``GRUCell(512)`` over float features (B, T, 16); returns
  ``(outputs (B, T, 512), h_final (B, 512))``.

The ports read the weights from the TF variables by name (``weights_of``) and follow the cells'
equations (tf_keras ``legacy_tf_layers``/``layers/legacy_rnn/rnn_cell_impl.py``: ``LSTMCell.call``
with gates ``i, j, f, o`` and ``forget_bias=1.0``; ``GRUCell.call`` with the reset gate applied to
the state before the candidate matmul). :data:`BUGS` are the porting mistakes people make.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from unirep_port.tfstart import import_tensorflow

VOCAB, EMBED, HIDDEN, FEATURES = 25, 32, 512, 16

Tokens = Int[Array, "batch time"]  # (B, T) token ids, 0-padded past each length
Lengths = Int[Array, " batch"]  # (B,) valid positions per row
Feats = Float[Array, "batch time features"]  # (B, T, 16)
Logits = Float[Array, "batch time vocab"]  # (B, T, 25)
Hs = Float[Array, "batch time hidden"]  # (B, T, H), zero past each length
H = Float[Array, "batch hidden"]  # (B, H)


@contextlib.contextmanager
def _legacy_cells():
    """The TF1 cells and ``dynamic_rnn`` are used on purpose: their deprecation is not news."""
    from tensorflow.python.util import deprecation

    with warnings.catch_warnings(), deprecation.silence():
        warnings.filterwarnings("ignore", message=r".*is deprecated", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message=r".*legacy_rnn|.*keras\.layers", category=UserWarning
        )
        yield


# ----- the TF references --------------------------------------------------------------------
def lstm_lm(seed: int = 0, hidden: int = HIDDEN):
    """The stacked-LSTM language model as a ``tf.function(tokens, lengths)``, variables built."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    embed = tf.Variable(rng.normal(0, 0.5, (VOCAB, EMBED)).astype(np.float32), name="embed")
    w_out = tf.Variable(rng.normal(0, 0.05, (hidden, VOCAB)).astype(np.float32), name="w_out")
    b_out = tf.Variable(rng.normal(0, 0.1, (VOCAB,)).astype(np.float32), name="b_out")
    init = v1.glorot_uniform_initializer(seed=seed)
    with _legacy_cells():
        cell = v1.nn.rnn_cell.MultiRNNCell(
            [v1.nn.rnn_cell.LSTMCell(hidden, initializer=init, name=f"lstm{i}") for i in range(2)]
        )

    @tf.function(autograph=False)
    def reference(tokens, lengths):
        x = tf.nn.embedding_lookup(embed, tokens)  # (B, T) -> (B, T, 32)
        out, state = v1.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
        logits = tf.einsum("bth,hv->btv", out, w_out) + b_out  # (B, T, H) @ (H, 25) -> (B, T, 25)
        return logits, state[-1].h  # (B, T, 25), (B, H)

    tokens, lengths = example_tokens(np.random.default_rng(0), 1, 3)[0]
    with _legacy_cells():
        reference(tokens, lengths)  # build the cells' variables
    reference.variables_by_name = {
        v.name.split(":")[0]: v for v in [embed, w_out, b_out, *cell.variables]
    }
    return reference


def gru_encoder(seed: int = 0, hidden: int = HIDDEN):
    """The GRU encoder as a ``tf.function(features, lengths)``, variables built."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    init = v1.glorot_uniform_initializer(seed=seed)
    with _legacy_cells():
        cell = v1.nn.rnn_cell.GRUCell(
            hidden,
            kernel_initializer=init,
            bias_initializer=v1.random_normal_initializer(0, 0.1, seed),
        )

    @tf.function(autograph=False)
    def reference(features, lengths):
        out, state = v1.nn.dynamic_rnn(cell, features, sequence_length=lengths, dtype=tf.float32)
        return out, state  # (B, T, H), (B, H)

    feats, lengths = example_features(np.random.default_rng(0), 1, 3)[0]
    with _legacy_cells():
        reference(feats, lengths)
    reference.variables_by_name = {v.name.split(":")[0]: v for v in cell.variables}
    return reference


def weights_of(reference) -> dict[str, np.ndarray]:
    """{TF variable name: float32 array}: the checkpoint-style weights a hand port reads."""
    return {k: v.numpy() for k, v in reference.variables_by_name.items()}


def example_tokens(rng: np.random.Generator, n: int, t: int, batch: int = 2):
    """``n`` batches ``(tokens (B, T) int32, lengths (B,) int32)``, first row full length,
    tokens from the 25-letter vocabulary (0 past each length)."""
    out = []
    for _ in range(n):
        lengths = np.concatenate([[t], rng.integers(1, t + 1, batch - 1)]).astype(np.int32)
        tokens = rng.integers(0, VOCAB, (batch, t)).astype(np.int32)
        tokens[np.arange(t)[None, :] >= lengths[:, None]] = 0  # padding
        out.append((tokens, lengths))
    return out


def example_features(
    rng: np.random.Generator, n: int, t: int, batch: int = 2, features: int = FEATURES
):
    """``n`` batches ``(features (B, T, F) float32, lengths (B,) int32)``, first row full."""
    out = []
    for _ in range(n):
        lengths = np.concatenate([[t], rng.integers(1, t + 1, batch - 1)]).astype(np.int32)
        feats = rng.normal(0, 1, (batch, t, features)).astype(np.float32)
        out.append((feats, lengths))
    return out


# ----- the hand ports -----------------------------------------------------------------------
def _key(w: dict, suffix: str) -> np.ndarray:
    """The one weight whose name ends with ``suffix`` (a clear KeyError otherwise)."""
    hits = [k for k in w if k.endswith(suffix)]
    if len(hits) != 1:
        raise KeyError(f"expected one weight named *{suffix}, found {hits} in {sorted(w)}")
    return jnp.asarray(w[hits[0]])


def _masked_scan(step, h0, xs, lengths, mask: bool):
    """Run ``step(carry, x_t) -> (carry, out_t)`` over time (axis 1) as ``dynamic_rnn`` does:
    past each row's length the carry is frozen and the output zero (unless ``mask`` is False)."""
    t_len = xs.shape[1]

    def body(carry, inp):
        x_t, t = inp
        new, out = step(carry, x_t)
        if not mask:
            return new, out
        live = (t < lengths)[:, None]  # (B, 1)
        new = jax.tree.map(lambda n, c: jnp.where(live, n, c), new, carry)
        return new, jnp.where(live, out, jnp.zeros_like(out))

    carry, outs = jax.lax.scan(body, h0, (jnp.swapaxes(xs, 0, 1), jnp.arange(t_len)))
    return carry, jnp.swapaxes(outs, 0, 1)  # (T, B, H) -> (B, T, H)


def lstm_port(w: dict[str, np.ndarray], bug: str | None = None) -> Callable:
    """The JAX port of :func:`lstm_lm`: ``fn(tokens, lengths) -> (logits, h_final)``."""
    kernels = [_key(w, f"lstm{i}/kernel") for i in range(2)]  # (n_in + H, 4H)
    biases = [_key(w, f"lstm{i}/bias") for i in range(2)]  # (4H,)
    embed, w_out, b_out = _key(w, "embed"), _key(w, "w_out"), _key(w, "b_out")
    hidden = w_out.shape[0]
    forget_bias = 0.0 if bug == "lstm_forget_bias_forgotten" else 1.0

    def cell(kernel, bias, x, c, h):
        z = jnp.concatenate([x, h], axis=-1) @ kernel + bias  # (B, n_in+H) @ (n_in+H, 4H)
        if bug == "lstm_gate_order_ifoc":
            i, f, o, j = jnp.split(z, 4, axis=-1)  # the wrong order: i, f, o, c
        else:
            i, j, f, o = jnp.split(z, 4, axis=-1)  # TF's order: i, c (j), f, o; 4 x (B, H)
        c = jax.nn.sigmoid(f + forget_bias) * c + jax.nn.sigmoid(i) * jnp.tanh(j)
        return c, jax.nn.sigmoid(o) * jnp.tanh(c)  # (B, H) each

    def step(state, x_t):
        new = []
        for layer in range(2):
            c, h = cell(kernels[layer], biases[layer], x_t, *state[layer])
            new.append((c, h))
            x_t = h
        return tuple(new), x_t

    @jax.jit
    def fn(tokens: Tokens, lengths: Lengths) -> tuple[Logits, H]:
        x = embed[tokens]  # (B, T) -> (B, T, 32)
        zeros = jnp.zeros((tokens.shape[0], hidden), jnp.float32)
        state, outs = _masked_scan(
            step, ((zeros, zeros), (zeros, zeros)), x, lengths, bug != "lstm_masking_ignored"
        )
        logits = outs @ w_out + b_out  # (B, T, H) @ (H, 25) -> (B, T, 25)
        return logits, state[-1][1]

    return fn


def gru_port(w: dict[str, np.ndarray], bug: str | None = None) -> Callable:
    """The JAX port of :func:`gru_encoder`: ``fn(features, lengths) -> (outputs, h_final)``."""
    wg, bg = _key(w, "gates/kernel"), _key(w, "gates/bias")  # (F+H, 2H), (2H,)
    wc, bc = _key(w, "candidate/kernel"), _key(w, "candidate/bias")  # (F+H, H), (H,)
    n_in = wg.shape[0] - wc.shape[1]

    def step(h, x_t):
        gates = jax.nn.sigmoid(jnp.concatenate([x_t, h], -1) @ wg + bg)  # (B, F+H) @ -> (B, 2H)
        r, u = jnp.split(gates, 2, axis=-1)  # (B, H) each: TF's order, reset then update
        if bug == "gru_gates_swapped":  # Keras' GRU order (z, r, h) read into TF's GRUCell
            u, r = r, u
        if bug == "gru_reset_after":  # cuDNN / PyTorch: r * (h @ W_hc) after the matmul
            cand = jnp.tanh(x_t @ wc[:n_in] + r * (h @ wc[n_in:]) + bc)  # (B, H)
        else:  # TF GRUCell: r * h before the matmul
            cand = jnp.tanh(jnp.concatenate([x_t, r * h], -1) @ wc + bc)  # (B, F+H) @ (F+H, H)
        h = u * h + (1 - u) * cand
        return h, h

    @jax.jit
    def fn(features: Feats, lengths: Lengths) -> tuple[Hs, H]:
        h0 = jnp.zeros((features.shape[0], wc.shape[1]), jnp.float32)
        h, outs = _masked_scan(step, h0, features, lengths, bug != "gru_masking_ignored")
        return outs, h

    return fn


# name -> (model, description)
BUGS = {
    "lstm_forget_bias_forgotten": ("lstm", "LSTMCell's forget_bias=1.0 left out"),
    "lstm_gate_order_ifoc": ("lstm", "gates split as i, f, o, c instead of TF's i, c, f, o"),
    "lstm_masking_ignored": ("lstm", "sequence_length ignored: state and outputs run on"),
    "gru_reset_after": ("gru", "reset gate applied after the recurrent matmul (cuDNN/PyTorch)"),
    "gru_masking_ignored": ("gru", "sequence_length ignored: state and outputs run on"),
    "gru_gates_swapped": ("gru", "update and reset gates read in Keras' order (z, r)"),
}
