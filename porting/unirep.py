"""The automatic port of UniRep: the reference's own TF1 graph, converted by ``from_tf``'s route.

Not a rewrite: ``reference_tf.graph.build_graph`` builds the babbler graph (the batched
verification path: ``dynamic_rnn`` with ``sequence_length`` and a zero start over the same
variables), under control flow v2; its variables are frozen and the graph is cut to
``(minibatch_x, seq_len) -> (b_output, b_h_final, b_c_final)``, with the ``batch_size``
placeholder replaced by ``tf.shape(minibatch_x)[0]`` (static under ``jax.jit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from jaxtyping import Array, Float, Int

from unirep_port.alphabet import pad_batch, validate_sequences
from unirep_port.batches import by_length
from unirep_port.porting.convert import Converted, GraphSpec, control_flow_v2, from_graph_def
from unirep_port.tfstart import import_tensorflow

INPUTS = ("minibatch_x:0", "seq_len:0")
T_BUCKET = 32  # batches are padded to a multiple of this length: fewer shapes, fewer compiles
Tokens = Int[np.ndarray, "batch time"]  # start token then residues, 0-padded
Lengths = Int[np.ndarray, " batch"]  # tokens per row, start token counted
BTH = Float[Array, "batch time hidden"]
BH = Float[Array, "batch hidden"]


def reference_graph_spec(params: Mapping[str, np.ndarray], size: int) -> GraphSpec:
    """The frozen batched path of the reference graph for ``size`` on ``params``."""
    tf = import_tensorflow()
    from unirep_port.reference_tf.graph import build_graph, resolve_params

    v1 = tf.compat.v1
    params, size = resolve_params(params, size)
    graph = tf.Graph()
    with graph.as_default(), control_flow_v2():  # tf2jax converts While, never Enter/Exit
        g = build_graph(params, size)
    outs = [g.b_output, g.b_h_final, g.b_c_final]
    from tensorflow.python.util import deprecation

    with v1.Session(graph=graph) as sess, deprecation.silence():  # the v1 API, on purpose
        sess.run(g.init_op)
        with graph.as_default():
            frozen = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), sorted({t.op.name for t in outs})
            )
    return GraphSpec(
        frozen,
        INPUTS,
        tuple(t.name for t in outs),
        {"batch_size:0": lambda x, seq_len: tf.shape(x)[0]},
    )


def auto_port(params: Mapping[str, np.ndarray] | str, size: int | None = None) -> Converted:
    """Convert the reference graph; ``fn(params, tokens, lengths) -> (hs, h_final, c_final)``.

    Args:
        params: canonical dict {TF variable name: array} or a weights path (as ``Babbler``).
        size: 1900, 256 or 64 (detected from the shapes when None).

    The JAX function takes ``tokens`` (B, T) int32 (start token then residues, 0-padded) and
    ``lengths`` (B,) int32 (tokens per row, start token counted) and returns ``hs`` (B, T, H),
    zero past each length, and the last layer's ``h_final``, ``c_final`` (B, H).
    """
    from unirep_port.reference_tf.graph import resolve_params

    params, size = resolve_params(params, size)
    tokens, lengths = pad_batch(["MKV", "MK"])
    return from_graph_def(reference_graph_spec(params, size), (tokens, lengths))


def forward(port: Converted, tokens: Tokens, lengths: Lengths) -> tuple[BTH, BH, BH]:
    """``(hs, h_final, c_final)`` of one padded batch through the jitted converted function."""
    return port.jitted(port.params, np.asarray(tokens, np.int32), np.asarray(lengths, np.int32))


def reps(
    port: Converted, seqs: str | Iterable[str], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h_avg, h_final, c_final)``, each (N, H) float32, in input order (as ``Babbler.reps``).

    Sequences are batched by length and padded to a multiple of :data:`T_BUCKET` tokens (the
    graph's ``sequence_length`` keeps padding out of every result); ``h_avg`` is the mean of
    ``hs`` over each row's real positions (start token included), as the reference's ``get_rep``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    seqs = validate_sequences(seqs)
    out: list[np.ndarray] | None = None
    for idx in by_length(seqs, batch_size):
        longest = max(len(seqs[i]) + 1 for i in idx)
        tokens, lengths = pad_batch([seqs[i] for i in idx], -(-longest // T_BUCKET) * T_BUCKET)
        hs, h_final, c_final = (np.asarray(a) for a in forward(port, tokens, lengths))
        if out is None:
            out = [np.zeros((len(seqs), hs.shape[-1]), np.float32) for _ in range(3)]
        mask = np.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, T)
        h_avg = (hs * mask[..., None]).sum(axis=1) / lengths[:, None]  # (B, T, H) -> (B, H)
        out[0][idx], out[1][idx], out[2][idx] = h_avg, h_final, c_final
    return out[0], out[1], out[2]
