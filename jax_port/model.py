"""The stacked model: hoisted weight preparation, one stacked step, and the reference ``forward``.

``prepare`` runs once per call (weight norm and the per-token input tables are hoisted out of the
time loop); ``stack_step`` advances every layer by one token; ``forward`` is the plain
differentiable path over a padded (B, T) batch (used for per-position outputs and training).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port.jax_port import cell
from unirep_port.jax_port.params import Params
from unirep_port.jax_port.types import BH, BTH, BTO, HO, V4H, VH, TokB, TokBT, VecO
from unirep_port.alphabet import VOCAB_SIZE


class Prepared(NamedTuple):
    """Loop-invariant quantities derived from :class:`Params` once per call.

    ``tab_xw[t] = embed(t) @ wx_0 + b_0`` and ``tab_xm[t] = embed(t) @ wmx_0`` for each of the 26
    tokens (layer 0's input is always one of them), and the weight-normalised cells with their
    matrices stored transposed, (n_out, n_in) (faster and more accurate on XLA's CPU kernels; see
    ``cell.matmul``).
    """

    tab_xw: V4H
    tab_xm: VH
    cells: tuple[cell.NormedCell, ...]
    dense_w: HO
    dense_b: VecO


def prepare(params: Params, xp=jnp) -> Prepared:
    """Weight-normalise every cell and tabulate layer 0's input products per token.

    With ``xp=jnp`` this is traceable and differentiable (training). Inference uses
    :func:`prepare_host`, the same functions evaluated in float64 on the host.
    """
    cells = tuple(cell.normalize_cell(c, xp) for c in params.cells)
    x_all = cell.embed(params.embedding, xp.arange(VOCAB_SIZE), xp)  # (26,) -> (26, 10)
    tab_xw, tab_xm = cell.input_proj(
        x_all, cells[0].wx, cells[0].wmx, cells[0].b, xp
    )  # (26, 4H), (26, H)
    t = (lambda w: np.ascontiguousarray(w.T)) if xp is np else (lambda w: w.T)
    cells_t = tuple(
        cell.NormedCell(wx=t(c.wx), wh=t(c.wh), wmx=t(c.wmx), wmh=t(c.wmh), b=c.b) for c in cells
    )  # (n_out, n_in) each
    return Prepared(tab_xw, tab_xm, cells_t, params.dense_w, params.dense_b)


_HOST_CACHE: list[tuple[Params, Prepared]] = []


def prepare_host(params: Params) -> Prepared:
    """:func:`prepare` in float64 on the host, rounded once to float32.

    Weight normalisation and the per-token tables are then correctly rounded instead of
    carrying float32 reduction error (about 3 ulp per weight): this halves the port's distance
    from an exact evaluation on long sequences at no cost per token (measured against the
    float64 oracle in ``parity_tests/oracle.py``). The last two results are cached by identity
    of ``params`` (whose jax arrays are immutable).
    """
    for p, prep in _HOST_CACHE:
        if p is params:
            return prep
    p64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    prep64 = prepare(p64, xp=np)
    prep = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a, np.float32)), prep64)
    _HOST_CACHE.insert(0, (params, prep))
    del _HOST_CACHE[2:]
    return prep


def clear_host_cache() -> None:
    _HOST_CACHE.clear()


Carries = tuple[cell.Carry, ...]  # one (c, h) per layer


def zero_carries(n_layers: int, batch: int, hidden: int) -> Carries:
    """All-zero state, ``rnn.zero_state`` of unirep.py L344."""
    z = jnp.zeros((batch, hidden), jnp.float32)  # (B, H)
    return tuple((z, z) for _ in range(n_layers))


def stack_step(prep: Prepared, tok: TokB, carries: Carries) -> tuple[Carries, BH, BH]:
    """Advance all layers by one token; mirrors unirep.py L283-309 (mLSTMCellStackNPY.call).

    Returns the new carries, the output h (last layer) and the last layer's c.
    """
    xw = jnp.take(prep.tab_xw, tok, axis=0)  # (26, 4H)[(B,)] -> (B, 4H)
    xm = jnp.take(prep.tab_xm, tok, axis=0)  # (26, H)[(B,)] -> (B, H)
    new = []
    h = c = None
    for i, nc in enumerate(prep.cells):
        if i > 0:
            xw, xm = cell.input_proj(h, nc.wx, nc.wmx, nc.b, out_in=True)  # (B, 4H), (B, H)
        carry, h = cell.mlstm_step(xw, xm, carries[i], nc.wh, nc.wmh, out_in=True)
        c = carry[0]
        new.append(carry)
    return tuple(new), h, c


def forward(params: Params, tokens: TokBT, lengths: TokB) -> tuple[BTH, BTO]:
    """Per-position outputs of a padded batch; the differentiable reference-style path.

    Mirrors the babbler graph of unirep.py L312-395: embedding lookup, ``dynamic_rnn`` over time
    (L356-362), the logit layer (L372-376). Unlike the fast path it embeds tokens and computes
    the input products per step, without the per-token tables.

    Args:
        params: model parameters.
        tokens: (B, T) int32 tokens, start token first, padded with 0 after ``lengths[b]``.
        lengths: (B,) number of real tokens (start token included).

    Returns:
        ``hs`` (B, T, H) output h (zero at padding) and ``logits`` (B, T, 25).
    """
    cells = tuple(cell.normalize_cell(c) for c in params.cells)
    x = cell.embed(params.embedding, tokens)  # (B, T) -> (B, T, 10)
    bsz, hid = tokens.shape[0], params.hidden

    def step(carries, x_t):
        new, inp = [], x_t  # (B, 10)
        for i, nc in enumerate(cells):
            xw, xm = cell.input_proj(inp, nc.wx, nc.wmx, nc.b)  # (B, 4H), (B, H)
            carry, inp = cell.mlstm_step(xw, xm, carries[i], nc.wh, nc.wmh)  # inp: (B, H)
            new.append(carry)
        return tuple(new), inp

    _, hs = jax.lax.scan(step, zero_carries(len(cells), bsz, hid), jnp.swapaxes(x, 0, 1))
    hs = jnp.swapaxes(hs, 0, 1)  # (T, B, H) -> (B, T, H)
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, T)
    hs = jnp.where(mask[..., None], hs, 0.0)  # (B, T, H)
    return hs, cell.logits(hs, params.dense_w, params.dense_b)  # (B, T, 25)


def forward_prepared(prep: Prepared, tokens: TokBT, lengths: TokB) -> tuple[BTH, BTO]:
    """Per-position outputs for inference, from :func:`prepare_host` weights.

    Runs the very :func:`stack_step` the reps engine runs, so per-position states and reps come
    from one code path. Same arguments and results as :func:`forward`.
    """
    bsz, hid = tokens.shape[0], prep.cells[0].wmh.shape[0]

    def step(carries, tok):  # tok: (B,)
        carries, h, _ = stack_step(prep, tok, carries)  # h: (B, H)
        return carries, h

    carries0 = zero_carries(len(prep.cells), bsz, hid)
    _, hs = jax.lax.scan(step, carries0, jnp.swapaxes(tokens, 0, 1))  # (T, B, H)
    hs = jnp.swapaxes(hs, 0, 1)  # (T, B, H) -> (B, T, H)
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, T)
    hs = jnp.where(mask[..., None], hs, 0.0)  # (B, T, H)
    return hs, cell.logits(hs, prep.dense_w, prep.dense_b)  # (B, T, 25)
