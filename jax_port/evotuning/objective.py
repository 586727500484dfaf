"""The evotuning objective: next-amino-acid cross-entropy over a memory-bounded differentiable scan.

Mirrors the babbler loss of unirep.py L337-342 and L382-388: targets are the next tokens (residues
then the stop token 25, padding 0), ``mask = sign(targets)``, the class of target ``y`` is ``y - 1``
(logit ``k`` predicts token ``k + 1``), ``tf.contrib.seq2seq.sequence_loss(...,
average_across_batch=False)`` gives each sequence's masked mean cross-entropy, and the loss is the
mean of those over the batch.

Memory: a plain ``lax.scan`` differentiated by JAX keeps every step's intermediates (several
``(B, 4H)`` arrays per step), so memory grows with ``T * B * 4H``. Here time is cut into blocks of
``block`` steps; each block computes its own logits and cross-entropy sums and is wrapped in
``jax.checkpoint``, so the backward pass stores only the ``(c, h)`` carries at block boundaries and
recomputes one block at a time. Optional truncated BPTT (``tbptt=N``) stops the gradient through
the carry every ``N`` steps.

Speed: inside a block each layer's input products are one matmul over the block's K steps, and
(with ``fused=True``) the recurrence uses :func:`jax_port.evotuning.rnn.recurrent_block`, whose
backward pass forms the recurrent weight gradients once per block instead of once per step.

Numerics: every function takes ``cell`` (a :class:`jax_port.cell.CellFns`, static under jit;
default ``DEFAULT_CELL``, or a prepared model's ``model.cell``), used by both paths. The fused
recurrence re-expresses ``mlstm_step`` (with the record's ``gate_split``, ``sigmoid`` and
``tanh``), so a record whose ``mlstm_step`` or ``matmul`` is not the default runs the unfused
path, which calls them.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from unirep_port.alphabet import tokenize, validate_sequences
from unirep_port.jax_port import cell as _cell
from unirep_port.jax_port.cell import DEFAULT_CELL, CellFns
from unirep_port.jax_port.evotuning import rnn
from unirep_port.jax_port.params import Params
from unirep_port.jax_port.types import XpArray, XpTokBT

DEFAULT_BLOCK = 32  # time steps per checkpointed block

MaskBT = Float[XpArray, "batch time"]  # 1.0 at real target positions (jax or host numpy)
VecB = Float[Array, " batch"]
Scalar = Float[Array, ""]


def make_batch(
    seqs: Sequence[str], width: int | None = None, rows: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training arrays of a batch, as the original ``bucket_batch_pad``/``format_seq`` fed them.

    Each sequence becomes ``t = tokenize(seq, stop=True)`` = ``[24] + residues + [25]``; the input
    is ``t[:-1]`` and the target ``t[1:]`` (unirep.py L337-342, L482-494), both right-padded with 0.

    Args:
        seqs: amino-acid strings (validated; errors name the sequence index).
        width: pad the time axis to at least this many positions (for bucketed compiles).
        rows: pad the batch with all-padding rows up to this many (they carry zero mask and do
            not enter the loss; see :func:`loss`).

    Returns:
        ``tokens_in`` (B, T) int32, ``targets`` (B, T) int32, ``mask`` (B, T) float32 with 1 at
        the ``len(seq) + 1`` real positions of each row.
    """
    seqs = validate_sequences(seqs)
    toks = [tokenize(s, stop=True) for s in seqs]  # each (L + 2,)
    t = max(max(len(x) - 1 for x in toks), width or 0)
    b = max(len(toks), rows or 0)
    tokens_in = np.zeros((b, t), np.int32)  # (B, T)
    targets = np.zeros((b, t), np.int32)  # (B, T)
    for i, x in enumerate(toks):
        tokens_in[i, : len(x) - 1] = x[:-1]
        targets[i, : len(x) - 1] = x[1:]
    mask = np.sign(targets).astype(np.float32)  # (B, T), unirep.py L337
    return tokens_in, targets, mask


def per_sequence_xent_sums(
    params: Params,
    tokens_in: XpTokBT,
    targets: XpTokBT,
    mask: MaskBT,
    *,
    remat: bool = True,
    tbptt: int | None = None,
    block: int = DEFAULT_BLOCK,
    fused: bool = True,
    cell: CellFns = DEFAULT_CELL,
) -> VecB:
    """Sum over time of ``mask * cross-entropy`` per sequence (the numerator of sequence_loss).

    Runs the stacked mLSTM over ``tokens_in`` from a zero state (unirep.py L357-363, no
    ``sequence_length``: padding steps run but are masked out of the loss, as in the original).

    Args:
        params: model parameters (differentiated).
        tokens_in, targets, mask: as returned by :func:`make_batch`.
        remat: checkpoint each block of ``block`` steps (recompute it in the backward pass).
        tbptt: if set, cut the gradient through the recurrent state every ``tbptt`` steps.
        block: steps per block; the time axis is zero-padded (mask 0) to a multiple of it.
        fused: use :func:`jax_port.evotuning.rnn.recurrent_block` (hand-written backward that
            forms the recurrent weight gradients once per block); False differentiates
            ``cell.mlstm_step`` with JAX (same values; slower, used to check it). Ignored
            (unfused) when ``cell`` replaces ``mlstm_step`` or ``matmul``.
        cell: the cell's functions (:class:`jax_port.cell.CellFns`).
    """
    if tbptt is not None and tbptt < 1:
        raise ValueError(f"tbptt must be a positive number of steps or None, got {tbptt}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    fns = cell
    fused = fused and fns.mlstm_step is _cell.mlstm_step and fns.matmul is _cell.matmul
    cells = tuple(fns.normalize_cell(c, fns=fns) for c in params.cells)  # L112-116, hoisted
    bsz, t = tokens_in.shape
    n_blocks = -(-t // block)
    pad = n_blocks * block - t
    tokens_in = jnp.pad(tokens_in, ((0, 0), (0, pad)))  # (B, T') with T' = n_blocks * block
    cls = jnp.maximum(targets - 1, 0)  # (B, T): y - 1, padding -> 0 (unirep.py L338-342)
    cls = jnp.pad(cls, ((0, 0), (0, pad)))  # (B, T')
    mask = jnp.pad(mask.astype(jnp.float32), ((0, 0), (0, pad)))  # (B, T')

    def to_blocks(a):  # (B, T') -> (n_blocks, block, B)
        return jnp.transpose(a.reshape(bsz, n_blocks, block), (1, 2, 0))

    steps = jnp.arange(n_blocks * block, dtype=jnp.int32).reshape(n_blocks, block)
    xs = (to_blocks(tokens_in), to_blocks(cls), to_blocks(mask), steps)

    def run_block(carries, blk):
        """One block of ``block`` steps, layer by layer (:func:`_layer_over_block`)."""
        tok, y, m, t_idx = blk  # (K, B), (K, B), (K, B), (K,)
        x = fns.embed(params.embedding, tok)  # (K, B) -> (K, B, 10)
        new = []
        for i, nc in enumerate(cells):
            carry, x = _layer_over_block(fns, nc, x, carries[i], t_idx, tbptt, fused)
            new.append(carry)
        lg = fns.logits(x, params.dense_w, params.dense_b)  # (K, B, H) @ (H, 25) -> (K, B, 25)
        logp = jax.nn.log_softmax(lg, axis=-1)  # (K, B, 25)
        xent = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]  # (K, B)
        return tuple(new), jnp.sum(xent * m, axis=0)  # (B,)

    if remat:
        run_block = jax.checkpoint(run_block)
    z = jnp.zeros((bsz, params.hidden), jnp.float32)  # (B, H), rnn.zero_state (unirep.py L344)
    init = tuple((z, z) for _ in cells)
    _, sums = jax.lax.scan(run_block, init, xs)  # (n_blocks, B)
    return jnp.sum(sums, axis=0)  # (B,)


def _layer_over_block(fns: CellFns, nc, x, carry, t_idx, tbptt: int | None, fused: bool):
    """One mLSTM layer over one block of K steps: its input products for the whole block are one
    matmul, then only the recurrent part runs step by step. ``x`` (K, B, in) is the layer's
    input, ``carry`` its ``(c, h)`` entering the block, ``t_idx`` (K,) the steps' times (for
    ``tbptt``); returns the carry leaving the block and the layer's outputs (K, B, H)."""
    xw, xm = fns.input_proj(x, nc.wx, nc.wmx, nc.b, fns=fns)  # (K, B, 4H), (K, B, H)
    if fused:  # hand-written backward: weight gradients once per block
        keep = jnp.ones(t_idx.shape, jnp.float32)  # (K,) 1: gradient flows
        if tbptt is not None:  # 0 where the state entering step t is cut
            keep = jnp.where((t_idx % tbptt == 0) & (t_idx > 0), 0.0, keep)
        c, h, x = rnn.recurrent_block(fns, xw, xm, *carry, nc.wh, nc.wmh, keep)
        return (c, h), x

    def rec(carry, inp):
        xw_t, xm_t, t = inp  # (B, 4H), (B, H), ()
        if tbptt is not None:  # cut the gradient into the state entering step t
            cut = (t % tbptt == 0) & (t > 0)
            carry = jax.tree.map(lambda a: jnp.where(cut, jax.lax.stop_gradient(a), a), carry)
        return fns.mlstm_step(xw_t, xm_t, carry, nc.wh, nc.wmh, fns=fns)  # (c, h), h

    return jax.lax.scan(rec, carry, (xw, xm, t_idx))  # carry, x: (K, B, H)


def per_sequence_loss(params, tokens_in, targets, mask, **kw) -> VecB:
    """Each sequence's masked mean cross-entropy, ``sequence_loss(average_across_batch=False)``.

    ``sum_t(mask * xent) / (sum_t(mask) + 1e-12)`` as TF computes it (unirep.py L382-387).
    Keyword arguments go to :func:`per_sequence_xent_sums`.
    """
    sums = per_sequence_xent_sums(params, tokens_in, targets, mask, **kw)  # (B,)
    return sums / (jnp.sum(mask.astype(jnp.float32), axis=1) + 1e-12)  # (B,)


def loss(
    params: Params,
    tokens_in: XpTokBT,
    targets: XpTokBT,
    mask: MaskBT,
    *,
    remat: bool = True,
    tbptt: int | None = None,
    block: int = DEFAULT_BLOCK,
    fused: bool = True,
    cell: CellFns = DEFAULT_CELL,
) -> Scalar:
    """The evotuning loss: mean over the batch of each sequence's masked mean cross-entropy.

    Mirrors unirep.py L382-388 (``reduce_mean`` of ``sequence_loss(average_across_batch=False)``).
    One deliberate extension: rows whose mask is all zero (batch padding added by
    :func:`make_batch` ``rows=``) are left out of the mean; with no such rows this is exactly the
    original. Differentiable with respect to ``params``. ``cell``: the cell's functions (a
    prepared model's ``model.cell`` to train with its numerics).
    """
    per_seq = per_sequence_loss(
        params,
        tokens_in,
        targets,
        mask,
        remat=remat,
        tbptt=tbptt,
        block=block,
        fused=fused,
        cell=cell,
    )  # (B,)
    real = (jnp.sum(mask, axis=1) > 0).astype(jnp.float32)  # (B,) 1 for rows with any target
    return jnp.sum(per_seq * real) / jnp.maximum(jnp.sum(real), 1.0)  # scalar
