"""Conversion rules for TensorFlow ops that tf2jax 0.3.8 lacks, and the public way to add one.

tf2jax converts a graph op by op, looking each op's name up in its own registry
(``tf2jax._src.ops``): a rule takes the op's ``NodeDef`` (its attributes) and returns a JAX
function of the op's inputs, returning its output (or a tuple, for several). :func:`register_op`
adds a rule to that registry; the rules below are registered when ``unirep_port.porting`` is
imported. They cover what a survey of the TF1 model-building APIs found missing (every op in the
graphs of ``tf.compat.v1.nn`` (activations, normalisations, losses, ``bidirectional_dynamic_rnn``,
``static_bidirectional_rnn``), ``tf.compat.v1.nn.rnn_cell`` (all cells and wrappers) and
``tf.compat.v1.layers``, traced with TF 2.21.0; the survey is ``tests/test_porting_ops.py``):

* ``ReverseSequence`` (inside every ``bidirectional_dynamic_rnn`` with ``sequence_length``),
* ``Selu``, ``Softsign``, ``LRN`` (``tf.nn.local_response_normalization``), ``EuclideanNorm``,
* ``SoftmaxCrossEntropyWithLogits`` (``softmax_cross_entropy_with_logits_v2``),
* ``SegmentSum``/``SegmentMean``/``SegmentMax``/``SegmentMin``/``SegmentProd``.

Each rule follows the TF kernel's documented semantics (``tf.raw_ops`` pages) and is judged
against TF's own float64 twin in the tests, an oracle that does not use the rule.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

_OURS: set[str] = set()  # the names this module (or a user, through register_op) registered


def _registry() -> dict:
    from tf2jax._src import ops as tf2jax_ops

    return tf2jax_ops._jax_ops


def has_rule(op: str) -> bool:
    """Whether tf2jax (with the kit's rules) can convert the op named ``op``."""
    return op in _registry()


def register_op(op: str, *, replace: bool = False) -> Callable:
    """Decorator: register ``rule(node_def) -> jax_fn`` as tf2jax's conversion of ``op``.

    ``jax_fn(*inputs)`` receives the op's inputs in the ``NodeDef``'s order (JAX arrays, or NumPy
    arrays where the input is a graph constant) and returns the op's output, or a tuple of
    outputs. Read the op's attributes from ``node_def.attr`` (``.i``, ``.f``, ``.b``, ``.s``).

    Raises:
        ValueError: ``op`` already has a rule (tf2jax's or a registered one) and ``replace``
            is False.
    """

    def deco(rule: Callable) -> Callable:
        table = _registry()
        if op in table and not replace:
            raise ValueError(f"register_op: {op!r} already has a conversion rule ({table[op]!r})")
        table[op] = rule
        _OURS.add(op)
        return rule

    return deco


def unregister_op(op: str) -> None:
    """Remove a rule registered through :func:`register_op` (tf2jax's own rules stay)."""
    if op not in _OURS:
        raise KeyError(f"unregister_op: {op!r} was not registered through register_op")
    _registry().pop(op, None)
    _OURS.discard(op)


def _attrs(node, allowed: set[str]) -> None:
    """Refuse attributes the rule does not implement (a silent misconversion is worse)."""
    extra = sorted(k for k in node.attr if k not in allowed and not k.startswith("_"))
    if extra:
        raise ValueError(f"{node.op} {node.name!r}: attribute(s) {extra} are not supported")


def _reverse_sequence(node):
    """``tf.reverse_sequence``: reverse the first ``seq_lengths[b]`` entries of each row ``b``."""
    _attrs(node, {"T", "Tlen", "seq_dim", "batch_dim"})
    seq_dim, batch_dim = node.attr["seq_dim"].i, node.attr["batch_dim"].i

    def fn(x, seq_lengths):
        t = jnp.arange(x.shape[seq_dim])  # (T,)
        n = jnp.asarray(seq_lengths).astype(jnp.int32)[:, None]  # (B, 1)
        idx = jnp.where(t[None, :] < n, n - 1 - t[None, :], t[None, :])  # (B, T)
        shape = [1] * x.ndim
        shape[batch_dim], shape[seq_dim] = x.shape[batch_dim], x.shape[seq_dim]
        if batch_dim > seq_dim:
            idx = idx.T  # laid out (T, B) to match the axes' order
        return jnp.take_along_axis(x, idx.reshape(shape), axis=seq_dim, mode="clip")

    return fn


def _selu(node):
    """``tf.nn.selu`` with TF's constants (``scale * elu(x, alpha)``)."""
    _attrs(node, {"T"})
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return lambda x: scale * jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))


def _softsign(node):
    """``tf.nn.softsign``: ``x / (1 + |x|)``."""
    _attrs(node, {"T"})
    return lambda x: x / (1 + jnp.abs(x))


def _euclidean_norm(node):
    """``tf.math.reduce_euclidean_norm``: ``sqrt(sum(x^2))`` over the constant ``axes``."""
    _attrs(node, {"T", "Tidx", "keep_dims"})
    keep = node.attr["keep_dims"].b

    def fn(x, axes):
        axes = tuple(int(a) for a in np.atleast_1d(np.asarray(axes)))
        return jnp.sqrt(jnp.sum(x * x, axis=axes, keepdims=keep))

    return fn


def _lrn(node):
    """``tf.nn.local_response_normalization`` over the last axis (NHWC)."""
    _attrs(node, {"T", "depth_radius", "bias", "alpha", "beta"})
    r, a = node.attr["depth_radius"].i, node.attr["alpha"].f
    bias, beta = node.attr["bias"].f, node.attr["beta"].f

    def fn(x):
        sq = jnp.pad(x * x, [(0, 0)] * (x.ndim - 1) + [(r, r)])  # (..., C + 2r)
        window = sum(sq[..., i : i + x.shape[-1]] for i in range(2 * r + 1))  # (..., C)
        return x / (bias + a * window) ** beta

    return fn


def _softmax_xent(node):
    """``SoftmaxCrossEntropyWithLogits``: (loss (B,), backprop (B, C)) from logits, labels."""
    _attrs(node, {"T"})

    def fn(logits, labels):
        logp = jax.nn.log_softmax(logits, axis=-1)  # (B, C)
        return -jnp.sum(labels * logp, axis=-1), jnp.exp(logp) - labels

    return fn


def _segment(reduce: Callable) -> Callable:
    def rule(node):
        """``tf.math.segment_*``: sorted segment ids, ``max(ids) + 1`` segments."""
        _attrs(node, {"T", "Tindices", "Tnumsegments"})

        def fn(data, segment_ids):
            try:  # the segment count sets the output's shape: static under jit
                ids = np.asarray(segment_ids)
            except jax.errors.TracerArrayConversionError as err:
                raise ValueError(f"{node.op} {node.name!r}: segment ids must be constant") from err
            n = int(ids.max()) + 1
            out = reduce(data, ids, num_segments=n, indices_are_sorted=True)  # (S, ...)
            if node.op in ("SegmentMax", "SegmentMin"):  # TF: an empty segment gives 0
                empty = np.bincount(ids, minlength=n) == 0  # (S,)
                out = jnp.where(empty.reshape((-1,) + (1,) * (out.ndim - 1)), 0, out)
            return out

        return fn

    return rule


def _segment_mean(data, ids, num_segments, indices_are_sorted):
    total = jax.ops.segment_sum(data, ids, num_segments, indices_are_sorted=indices_are_sorted)
    count = jax.ops.segment_sum(jnp.ones(len(ids), data.dtype), ids, num_segments)  # (S,)
    return total / jnp.maximum(count, 1).reshape((-1,) + (1,) * (data.ndim - 1))


RULES: dict[str, Callable] = {
    "ReverseSequence": _reverse_sequence,
    "Selu": _selu,
    "Softsign": _softsign,
    "EuclideanNorm": _euclidean_norm,
    "LRN": _lrn,
    "SoftmaxCrossEntropyWithLogits": _softmax_xent,
    "SegmentSum": _segment(jax.ops.segment_sum),
    "SegmentMax": _segment(jax.ops.segment_max),
    "SegmentMin": _segment(jax.ops.segment_min),
    "SegmentProd": _segment(jax.ops.segment_prod),
    "SegmentMean": _segment(_segment_mean),
}


def install() -> list[str]:
    """Register every rule of :data:`RULES` that tf2jax lacks (idempotent); their names."""
    done = []
    table = _registry()
    for op, rule in RULES.items():
        if table.get(op) is rule:
            continue
        if op not in table:
            register_op(op)(rule)
            done.append(op)
    return done
