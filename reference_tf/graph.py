"""Building the babbler graph: placeholders, embedding, ``dynamic_rnn``, logits, loss, sampler.

Mirrors ``babbler1900.__init__`` (unirep.py L312-393) and ``babbler256/64.__init__``
(L575-660, L693-778) on ``tf.compat.v1``, with three substitutions for what TF 2 removed:
``tf.contrib.layers.fully_connected`` becomes a plain matmul + bias on variables named
``fully_connected/weights`` and ``fully_connected/biases``; ``tf.contrib.seq2seq.sequence_loss``
is written out (:func:`sequence_loss`); ``tf.distributions.Categorical`` becomes a seedable
stateless categorical draw. A second ``dynamic_rnn`` over the same variables, with
``sequence_length`` and a zero initial state, serves the batched verification path.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import tensorflow as tf
from tensorflow.python.util import deprecation

from unirep_port.alphabet import N_OUTPUTS
from unirep_port.reference_tf.cell import MLSTMCell, MLSTMStack
from unirep_port.sizes import (
    CELL_PARAMS,
    DENSE_B_KEY,
    DENSE_W_KEY,
    EMBED_KEY,
    expected_shapes,
    get_size,
)

v1 = tf.compat.v1


def resolve_params(params_or_path, size: int | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Canonical float32 parameters and model size from a dict or a weights path.

    Args:
        params_or_path: a canonical dict {TF variable name: array}, or a path that
            ``weights.load`` reads (a canonical ``.safetensors`` file or the original tf1 ``.npy``
            folder, as the original read its ``model_path``).
        size: 1900, 256 or 64; detected from the shapes when None.

    Raises:
        weights.WeightsError: (a ValueError) naming every missing, unexpected, misshapen,
            non-float or non-finite key (``weights.checked``, the kit's one validator).
    """
    from unirep_port import (
        weights,
    )  # lazy: the reference needs only its check, or its reader for a path

    if isinstance(params_or_path, Mapping):
        return weights.checked(params_or_path, size, source="parameters")
    return weights.checked(weights.load(params_or_path), size, source=str(params_or_path))


def sequence_loss(logits, targets, weights):
    """Per-sequence weighted mean cross-entropy, like ``tf.contrib.seq2seq.sequence_loss`` with
    ``average_across_timesteps=True, average_across_batch=False`` (used at unirep.py L382-387).

    Args:
        logits: (B, T, 25) float32. targets: (B, T) int32 class ids in [0, 25).
        weights: (B, T) float32 mask.

    Returns:
        (B,) float32: sum_t(weights * xent) / (sum_t(weights) + 1e-12).
    """
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)  # (B, T)
    total = tf.reduce_sum(xent * weights, axis=1)  # (B,)
    return total / (tf.reduce_sum(weights, axis=1) + 1e-12)  # (B,)


def _state_placeholders(hidden: int, n_layers: int):
    """The ``initial_state`` placeholder tuple (unirep.py L325-328, L595-598)."""

    def ph():
        return v1.placeholder(tf.float32, shape=[None, hidden])

    if n_layers == 1:
        return (ph(), ph())
    return (tuple(ph() for _ in range(n_layers)), tuple(ph() for _ in range(n_layers)))


def build_graph(params: Mapping[str, np.ndarray], size: int) -> SimpleNamespace:
    """Build every op into the current default graph; returns the tensors by name.

    Must be called inside ``graph.as_default()``. Checks that the trainable variables' names are
    exactly the canonical keys of ``size``. The pieces below add their ops in the original's order.
    """
    m = get_size(size)
    g = _placeholders(m.hidden, m.n_layers)
    inits = [{p: params[m.cell_key(layer, p)] for p in CELL_PARAMS} for layer in range(m.n_layers)]
    if m.n_layers == 1:
        g.cell = MLSTMCell(m.hidden, inits[0], scope="mlstm")
    else:
        g.cell = MLSTMStack(m.hidden, inits, scope="mlstm_stack")

    # Loss targets and mask (unirep.py L337-342): pads (0) -> mask 0, target 0.
    mask = tf.sign(g.y)  # (B, T)
    inverse_mask = 1 - mask  # (B, T)
    pad_adjusted_targets = (g.y - 1) + inverse_mask  # (B, T) in [0, 25)

    embed_matrix = v1.get_variable("embed_matrix", initializer=params[EMBED_KEY])  # (26, 10)
    embed = tf.nn.embedding_lookup(embed_matrix, g.x)  # (B, T) -> (B, T, 10)
    b_dyn, t_dyn = _free_running(g, embed)
    logits_of = _dense_layer(params, m.hidden, t_dyn)
    _heads(g, logits_of, pad_adjusted_targets, mask, b_dyn, t_dyn)
    _batched_path(g, embed, m.n_layers, logits_of)
    g.init_op = v1.global_variables_initializer()
    g.variables = _checked_variables(size)
    return g


def _placeholders(hidden: int, n_layers: int) -> SimpleNamespace:
    """The graph's inputs (unirep.py L318-330), in a new namespace of its tensors."""
    g = SimpleNamespace()
    g.batch_size = v1.placeholder(tf.int32, shape=[], name="batch_size")
    g.x = v1.placeholder(tf.int32, shape=[None, None], name="minibatch_x")
    g.initial_state = _state_placeholders(hidden, n_layers)
    g.y = v1.placeholder(tf.int32, shape=[None, None], name="minibatch_y")
    g.seq_len = v1.placeholder(tf.int32, shape=[None], name="seq_len")
    g.temp = v1.placeholder(tf.float32, shape=[], name="temp")
    g.sample_seed = v1.placeholder(tf.int64, shape=[2], name="sample_seed")
    return g


def _free_running(g: SimpleNamespace, embed):
    """The original's ``dynamic_rnn`` (unirep.py L357-363: fed initial state, no
    ``sequence_length``) and the last layer's hidden state at each sequence's last position
    (L370); the batch and time sizes of the run, as tensors."""
    # dynamic_rnn is the original's op, used on purpose: its deprecation notice is not news.
    with deprecation.silence():
        g.output, g.final_state = v1.nn.dynamic_rnn(
            g.cell, embed, initial_state=g.initial_state, swap_memory=True, parallel_iterations=1
        )  # output (B, T, H)
    b_dyn = tf.shape(g.output)[0]
    t_dyn = tf.shape(g.x)[1]
    indices = g.seq_len - 1  # (B,)
    g.top_final_hidden = tf.gather_nd(
        g.output, tf.stack([tf.range(b_dyn, dtype=tf.int32), indices], axis=1)
    )  # (B, H), unirep.py L370
    return b_dyn, t_dyn


def _dense_layer(params: Mapping[str, np.ndarray], h_size: int, t_dyn):
    """The ``fully_connected`` variables and the function that applies them to a run's outputs."""
    with v1.variable_scope("fully_connected"):
        w_fc = v1.get_variable("weights", initializer=params[DENSE_W_KEY])  # (H, 25)
        b_fc = v1.get_variable("biases", initializer=params[DENSE_B_KEY])  # (25,)

    def logits_of(outputs):
        flat = tf.reshape(outputs, [-1, h_size])  # (B, T, H) -> (B*T, H)
        logits_flat = tf.matmul(flat, w_fc) + b_fc  # (B*T, H) @ (H, 25) + (25,) -> (B*T, 25)
        return tf.reshape(logits_flat, [tf.shape(outputs)[0], t_dyn, N_OUTPUTS])  # (B, T, 25)

    return logits_of


def _heads(g: SimpleNamespace, logits_of, pad_adjusted_targets, mask, b_dyn, t_dyn) -> None:
    """Logits, the loss (unirep.py L382-388) and the sampler (L21-28, L389) of the free run."""
    g.logits = logits_of(g.output)
    g.batch_losses = sequence_loss(
        g.logits, tf.cast(pad_adjusted_targets, tf.int32), tf.cast(mask, tf.float32)
    )  # (B,)
    g.loss = tf.reduce_mean(g.batch_losses)  # scalar, unirep.py L388
    # Sampler: softmax(logits / t), one categorical draw per position.
    log_probs = tf.nn.log_softmax(g.logits / g.temp)  # (B, T, 25)
    draws = tf.random.stateless_categorical(
        tf.reshape(log_probs, [-1, N_OUTPUTS]), 1, seed=g.sample_seed
    )  # (B*T, 1)
    g.sample = tf.reshape(tf.cast(draws, tf.int32), [b_dyn, t_dyn])  # (B, T) in [0, 25)
    g.zero_state_1 = g.cell.zero_state(1, tf.float32)


def _batched_path(g: SimpleNamespace, embed, n_layers: int, logits_of) -> None:
    """The batched verification path: same variables, zero start, state frozen past each
    length; the last layer's final states and the logits."""
    with deprecation.silence():
        g.b_output, g.b_final_state = v1.nn.dynamic_rnn(
            g.cell,
            embed,
            sequence_length=g.seq_len,
            initial_state=g.cell.zero_state(g.batch_size, tf.float32),
            swap_memory=True,
            parallel_iterations=1,
        )  # (B, T, H), zeros past seq_len
    c_fin, h_fin = g.b_final_state
    if n_layers > 1:
        c_fin, h_fin = c_fin[-1], h_fin[-1]  # the last layer, as babbler256.get_rep L687-688
    g.b_h_final, g.b_c_final = h_fin, c_fin  # (B, H) each
    g.b_logits = logits_of(g.b_output)  # (B, T, 25)


def _checked_variables(size: int) -> dict:
    """The graph's trainable variables by canonical name, once their names are exactly the
    canonical keys of ``size``."""
    names = {v.name[: -len(":0")] for v in v1.trainable_variables()}
    want = set(expected_shapes(size))
    if names != want:
        raise RuntimeError(
            f"graph variable names differ from the canonical keys: extra {sorted(names - want)}, "
            f"missing {sorted(want - names)}"
        )
    return {v.name[: -len(":0")]: v for v in v1.trainable_variables()}
