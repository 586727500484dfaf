"""The mLSTM cell as small functions, one concern each, and :class:`CellFns`, the record of them.

The port never calls these functions as module globals: every code path (the reps engine,
per-position outputs, babbling, the evotuning loss, its fused backward included) calls them
through the :class:`CellFns` of the model it runs, ``jax_port.prepare(params, cell=...)``
(default :data:`DEFAULT_CELL`). A variant is an explicit value, e.g.
``DEFAULT_CELL._replace(sigmoid=jax.nn.sigmoid)``; ``CellFns`` is hashable (its fields are
functions, compared by identity), so it is static data of the prepared weights and each variant
compiles once, beside the default, with no cache to clear.

Matmul precision is not an argument: callers trace under ``jax.default_matmul_precision``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from unirep_port import alphabet
from unirep_port.jax_port.params import CellParams
from unirep_port.jax_port.types import (
    B4H,
    BH,
    HO,
    LB4H,
    LBH,
    LH4H,
    LHH,
    XH,
    XO,
    AnyF,
    FourHH,
    FourHIn,
    HIn,
    LBias4H,
    LBIn,
    LFourHH,
    LMat,
    LMatT,
    MaskB,
    Mat,
    MatT,
    VecO,
    XIn,
    XOut,
    XpB4H,
    XpBH,
    XpBIn,
    XpE,
    XpH4H,
    XpHH,
    XpIn4H,
    XpInH,
    XpMat,
    XpTok,
    XpVE,
    XpVec4H,
    XpVecOut,
)

Carry = tuple[BH, BH]  # (c, h) as the original


def _plus_bias(y, b):
    """``y + b`` for a bias ``b`` over ``y``'s last axes, its leading axes written out (``(B, n)
    + (1, n)``): the tests run with ``jax_numpy_rank_promotion="raise"`` (``conftest.py``)."""
    return y + b.reshape((1,) * (y.ndim - b.ndim) + b.shape)


def weight_norm(w: XpMat, g: XpVecOut, xp=jnp) -> XpMat:
    """``tf.nn.l2_normalize(w, dim=0) * g``: unit columns scaled by the gain ``g``.

    Mirrors unirep.py L112-116. l2_normalize divides by ``sqrt(max(sum(w**2, axis=0), 1e-12))``.
    ``xp`` is the array namespace: ``jnp`` (traced, differentiable; training) or ``numpy`` on
    float64 arrays (inference preparation on the host, see ``model.prepare_host``).
    """
    sq = xp.sum(w * w, axis=0, keepdims=True)  # (n_in, n_out) -> (1, n_out)
    gain = g[None, :]  # (n_out,) -> (1, n_out)
    return w / xp.sqrt(xp.maximum(sq, 1e-12)) * gain  # (n_in, n_out) / (1, n_out) * (1, n_out)


def sigmoid(x: AnyF) -> AnyF:
    """Logistic sigmoid, ``tf.nn.sigmoid`` of unirep.py L120-122, accurate near 1.

    ``1 / (1 + exp(-x))``, and XLA's own logistic (``jax.nn.sigmoid``), round ``1 + exp(-x)`` to
    float32's spacing above 1 (2**-23), so a saturated gate (the forget gate of a long-memory
    cell, f ~ 1) carries about twice the rounding error of its float32 value; multiplied into a
    large ``c_prev`` at every step, that error builds up in the cell state. Here the small side
    ``s = t / (1 + t)``, ``t = exp(-|x|)``, is accurate relative to itself and the large side
    ``1 - s`` is rounded once onto the grid below 1 (error bound derived and checked in
    ``tests/test_port.py::test_sigmoid_error_is_bounded_elementwise``).

    How much it buys (mean error on saturated forget gates against ``jax.nn.sigmoid`` and
    ``tf.sigmoid``, one teacher-forced step's ``c`` error, the free-running ``c_final`` drift over
    the real-protein panel) is measured by ``python -m unirep_port.parity.sigmoid_study`` into
    ``parity_tests/results/sigmoid-accuracy.json``.
    """
    t = jnp.exp(-jnp.abs(x))  # (...) in (0, 1]: never overflows
    s = t / (1 + t)  # sigmoid(-|x|), the side below 1/2
    return jnp.where(x >= 0, 1 - s, s)


def gate_split(z: B4H) -> tuple[BH, ...]:
    """Split pre-activations into the (i, f, o, u) blocks in that order (unirep.py L119)."""
    i, f, o, u = jnp.split(z, 4, axis=-1)  # (B, 4H) -> 4 x (B, H)
    return i, f, o, u


def embed(embedding: XpVE, tokens: XpTok, xp=jnp) -> XpE:
    """Embedding lookup ``tf.nn.embedding_lookup`` (unirep.py L352-356): row ``token``."""
    return xp.take(embedding, tokens, axis=0)  # (26, 10)[(...)] -> (..., 10)


class NormedCell(NamedTuple):
    """One cell's weights after weight normalisation (hoisted out of the time loop).

    :func:`normalize_cell` gives the TF layout (n_in, n_out) (jax, or numpy on the host path);
    ``model.prepare`` stores the matrices transposed, (n_out, n_in), for ``out_in=True``
    (``wmh`` is square: one alias names both layouts).
    """

    wx: XpIn4H | FourHIn
    wh: XpH4H | FourHH
    wmx: XpInH | HIn
    wmh: XpHH
    b: XpVec4H


def normalize_cell(p: CellParams, xp=jnp, *, fns: CellFns | None = None) -> NormedCell:
    """Apply ``fns.weight_norm`` to the four matrices of a cell (unirep.py L112-116), once."""
    wn = (fns or DEFAULT_CELL).weight_norm
    return NormedCell(
        wx=wn(p.wx, p.gx, xp),
        wh=wn(p.wh, p.gh, xp),
        wmx=wn(p.wmx, p.gmx, xp),
        wmh=wn(p.wmh, p.gmh, xp),
        b=p.b,
    )


def matmul(x: XIn | LBIn, w: Mat | MatT | LMat | LMatT, out_in: bool = False) -> XOut:
    """``x @ w`` for ``w`` stored (n_in, n_out), or stored transposed (n_out, n_in) if ``out_in``.

    The inference path keeps its matrices transposed (see ``model.Prepared``): XLA's CPU kernels
    then contract along contiguous memory, which is faster at every batch size measured here
    (``benchmarks.harness.matmul_gflops`` times both layouts) and, for a single row, far more
    accurate (the row-vector kernel on the (n_in, n_out) layout sums each output sequentially over
    1,900 terms: on a 1,999-mer the port drifted 4.0e-5 from float64 at one row vs 7.2e-6
    transposed).

    A stack of matrices (``w`` with a leading ``layers`` axis, ``model.Stack``) multiplies each
    layer's rows ``x[l]`` (``x``: (L, B, n_in)) by its own matrix ``w[l]``: one batched product,
    whose every layer is the same kernel's product as the layer's alone (the same bits:
    ``tests/test_skewed_loop.py``).

    A bfloat16 ``w`` (the "fast" mode, ``jax_port.precision``) rounds ``x`` to bfloat16 too and
    accumulates in float32; a float32 ``w`` takes the float32 path unchanged.
    """
    lead = w.ndim - 2  # 1 for a stack of layers' matrices (batched over axis 0), else 0
    dims = (((x.ndim - 1,), (lead + (1 if out_in else 0),)), ((0,), (0,)) if lead else ((), ()))
    if w.dtype == jnp.bfloat16:
        x = x.astype(jnp.bfloat16)  # (..., n_in) f32 -> bf16, round to nearest even
        return jax.lax.dot_general(
            x, w, dims, precision=jax.lax.Precision.DEFAULT, preferred_element_type=jnp.float32
        )  # (..., n_in) . bf16 matrix -> (..., n_out) float32
    if not out_in and not lead:
        return jnp.dot(x, w)  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
    return jax.lax.dot_general(x, w, dims)  # (B, n_in) . (n_out, n_in), or per layer of a stack


def input_proj(
    x: XpBIn,
    wx: XpIn4H | FourHIn | LMat | LMatT,
    wmx: XpInH | HIn | LMat | LMatT,
    b: XpVec4H | LBias4H,
    xp=jnp,
    out_in: bool | None = None,
    *,
    fns: CellFns | None = None,
) -> tuple[XpB4H, XpBH]:
    """Input-side products of a step: ``x @ wx + b`` and ``x @ wmx`` (unirep.py L117-118).

    They do not depend on the recurrent state, so for layer 0 they are tabulated per token
    (on the host in float64 when ``xp`` is numpy). ``out_in`` True or False: the inference
    step's products, multiplied by ``fns.matmul`` with the matrices in that layout (see
    :func:`matmul`; JAX arrays only; a bf16 matrix takes the fast mode's product). None: the
    plain ``xp.dot`` of TF's (n_in, n_out) layout (the per-token tables, the training path).
    Stacked matrices (``model.Stack``: ``x`` (L, B, n_in), ``b`` (L, 1, 4H)) give every layer's
    products at once.
    """
    if out_in is not None:
        mm = (fns or DEFAULT_CELL).matmul
        return _plus_bias(mm(x, wx, out_in), b), mm(x, wmx, out_in)  # (B, 4H), (B, H)
    xw = _plus_bias(xp.dot(x, wx), b)  # (B, n_in) @ (n_in, 4H) + (4H,) -> (B, 4H)
    xm = xp.dot(x, wmx)  # (B, n_in) @ (n_in, H) -> (B, H)
    return xw, xm


def mlstm_step(
    xw: LB4H,
    xm: LBH,
    carry: tuple[LBH, LBH],
    wh: LH4H | LFourHH,
    wmh: LHH,
    out_in: bool = False,
    *,
    fns: CellFns | None = None,
) -> tuple[tuple[LBH, LBH], LBH]:
    """One mLSTM step given the input-side products; mirrors unirep.py L75-126 (call).

    The products, the gate split and the nonlinearities are those of ``fns`` (default
    :data:`DEFAULT_CELL`).

    Args:
        xw: ``x @ wx + b`` for this step; xm: ``x @ wmx``.
        carry: ``(c_prev, h_prev)``.
        wh, wmh: weight-normalised recurrent matrices, (n_in, n_out) or, if ``out_in``,
            stored transposed (see :func:`matmul`).

    Every array may carry a leading ``layers`` axis (``model.Stack``, the skewed loop): then
    each layer steps with its own matrices, all in one batched product per matrix.

    Returns:
        ``((c, h), h)``: the new carry and the output.
    """
    fns = fns or DEFAULT_CELL
    c_prev, h_prev = carry
    m = xm * fns.matmul(h_prev, wmh, out_in)  # (B, H) * ((B, H) @ (H, H)) -> (B, H)
    z = xw + fns.matmul(m, wh, out_in)  # (B, 4H) + (B, H) @ (H, 4H) -> (B, 4H)
    i, f, o, u = fns.gate_split(z)  # 4 x (B, H)
    i, f, o = fns.sigmoid(i), fns.sigmoid(f), fns.sigmoid(o)  # (B, H) each
    u = fns.tanh(u)  # (B, H)
    c = f * c_prev + i * u  # (B, H)
    h = o * fns.tanh(c)  # (B, H)
    return (c, h), h


Reps = tuple[BH, BH, BH]


def update_reps(
    reps: Reps,
    h: BH,
    c: BH,
    valid: MaskB,
) -> Reps:
    """Accumulate (sum of h, final h, final c) over real positions only (unirep.py L413-418).

    ``valid[b]`` is false at padding; there the running sum and the final states keep their
    values, so the final state is the one at the last real position and padding never enters
    the mean (the mean is ``sum / n_tokens``, taken on the host).
    """
    h_sum, h_fin, c_fin = reps
    v = valid[:, None]  # (B,) -> (B, 1)
    h_sum = h_sum + jnp.where(v, h, 0.0)  # (B, H)
    h_fin = jnp.where(v, h, h_fin)  # (B, H)
    c_fin = jnp.where(v, c, c_fin)  # (B, H)
    return h_sum, h_fin, c_fin


def logits(h: XH, w: HO, b: VecO) -> XO:
    """The logit layer ``h @ fully_connected/weights + biases`` (unirep.py L372-376)."""
    return _plus_bias(jnp.dot(h, w), b)  # (..., H) @ (H, 25) + (25,) -> (..., 25)


class CellFns(NamedTuple):
    """Every function of the model's arithmetic, from tokens to logits: the "numerics" record.

    One field per concern (the defaults are this module's functions). ``normalize_cell``,
    ``input_proj`` and ``mlstm_step`` call their siblings through the record they are given
    (keyword ``fns``), so replacing ``sigmoid`` changes every step. Immutable and hashable:
    variants are ``DEFAULT_CELL._replace(name=fn)`` and are static data of
    :class:`jax_port.model.Prepared` (each distinct record compiles once).

    Fields:
        tokenize: sequence -> tokens (``unirep_port.alphabet.tokenize``: start token, no stop).
        embed: embedding row lookup (also builds the per-token input tables).
        weight_norm: l2 normalisation over axis 0 times the gain (hoisted, once).
        normalize_cell: ``weight_norm`` of a cell's four matrices.
        matmul: ``x @ w`` for the recurrent and stacked-input products.
        input_proj: ``x @ wx + b`` and ``x @ wmx``.
        gate_split: order of the i, f, o, u blocks.
        sigmoid: the gate nonlinearity of i, f, o.
        tanh: the nonlinearity of u and of the output ``o * tanh(c)``.
        mlstm_step: one cell step and the (c, h) carry order.
        update_reps: masking of padding: running sum of h, final h, final c.
        logits: the logit layer.
    """

    tokenize: Callable = alphabet.tokenize
    embed: Callable = embed
    weight_norm: Callable = weight_norm
    normalize_cell: Callable = normalize_cell
    matmul: Callable = matmul
    input_proj: Callable = input_proj
    gate_split: Callable = gate_split
    sigmoid: Callable = sigmoid
    tanh: Callable = jnp.tanh
    mlstm_step: Callable = mlstm_step
    update_reps: Callable = update_reps
    logits: Callable = logits


DEFAULT_CELL = CellFns()
