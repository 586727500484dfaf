"""The mLSTM cell as small module-level functions, one concern each.

Every function here is looked up as a module global *at trace time* by ``model``, ``engine`` and
``api`` (they call ``cell.<name>``), so replacing one (e.g. ``monkeypatch.setattr(jax_port.cell,
"sigmoid", ...)``) and calling ``jax_port.clear_caches()`` changes every code path.

Matmul precision is not an argument: callers trace under ``jax.default_matmul_precision``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from unirep_port.jax_port.params import CellParams
from unirep_port.jax_port.types import (
    B4H,
    BH,
    H4H,
    HH,
    HO,
    VE,
    AnyE,
    AnyF,
    AnyH,
    AnyI,
    BIn,
    In4H,
    InH,
    MaskB,
    Mat,
    Vec4H,
    VecO,
    VecOut,
)

Carry = tuple[BH, BH]  # (c, h) as the original


def weight_norm(w: Mat, g: VecOut, xp=jnp) -> Mat:
    """``tf.nn.l2_normalize(w, dim=0) * g``: unit columns scaled by the gain ``g``.

    Mirrors unirep.py L112-116. l2_normalize divides by ``sqrt(max(sum(w**2, axis=0), 1e-12))``.
    ``xp`` is the array namespace: ``jnp`` (traced, differentiable; training) or ``numpy`` on
    float64 arrays (inference preparation on the host, see ``model.prepare_host``).
    """
    sq = xp.sum(w * w, axis=0, keepdims=True)  # (n_in, n_out) -> (1, n_out)
    return w / xp.sqrt(xp.maximum(sq, 1e-12)) * g  # (n_in, n_out) / (1, n_out) * (n_out,)


def sigmoid(x: AnyF) -> AnyF:
    """Logistic sigmoid, ``tf.nn.sigmoid`` of unirep.py L120-122, accurate near 1.

    ``1 / (1 + exp(-x))``, and XLA's own logistic (``jax.nn.sigmoid``), round ``1 + exp(-x)`` to
    float32's spacing above 1 (2**-23), so a saturated gate (the forget gate of a long-memory
    cell, f ~ 1) carries about twice the rounding error of its float32 value; multiplied into a
    large ``c_prev`` at every step, that error builds up in the cell state. Here the small side
    ``s = t / (1 + t)``, ``t = exp(-|x|)``, is accurate relative to itself and the large side
    ``1 - s`` is rounded once onto the grid below 1 (error bound derived and checked in
    ``tests/test_port.py::test_sigmoid_error_is_bounded_elementwise``).

    Measured (``python -m unirep_port.parity.sigmoid_study``, ``parity_tests/results/sigmoid-
    accuracy.json``; 256 model, real proteins): on saturated forget gates the mean error is
    1.50e-8 (correctly rounded: 1.49e-8; ``jax.nn.sigmoid`` 3.12e-8; ``tf.sigmoid`` 1.57e-8); one
    teacher-forced step's ``c`` error is 0.81x TF's (1.13x with ``jax.nn.sigmoid``); free-running
    over the 400-protein panel the port's ``c_final`` drift from float64 went from 1.41x TF's
    (median ratio) to 0.77x. Speed unchanged within noise (elementwise work is <1% of a step).
    """
    t = jnp.exp(-jnp.abs(x))  # (...) in (0, 1]: never overflows
    s = t / (1 + t)  # sigmoid(-|x|), the side below 1/2
    return jnp.where(x >= 0, 1 - s, s)


def gate_split(z: B4H) -> tuple[BH, ...]:
    """Split pre-activations into the (i, f, o, u) blocks in that order (unirep.py L119)."""
    i, f, o, u = jnp.split(z, 4, axis=-1)  # (B, 4H) -> 4 x (B, H)
    return i, f, o, u


def embed(embedding: VE, tokens: AnyI, xp=jnp) -> AnyE:
    """Embedding lookup ``tf.nn.embedding_lookup`` (unirep.py L352-356): row ``token``."""
    return xp.take(embedding, tokens, axis=0)  # (26, 10)[(...)] -> (..., 10)


class NormedCell(NamedTuple):
    """One cell's weights after weight normalisation (hoisted out of the time loop)."""

    wx: In4H
    wh: H4H
    wmx: InH
    wmh: HH
    b: Vec4H


def normalize_cell(p: CellParams, xp=jnp) -> NormedCell:
    """Apply :func:`weight_norm` to the four matrices of a cell (unirep.py L112-116), once."""
    return NormedCell(
        wx=weight_norm(p.wx, p.gx, xp),
        wh=weight_norm(p.wh, p.gh, xp),
        wmx=weight_norm(p.wmx, p.gmx, xp),
        wmh=weight_norm(p.wmh, p.gmh, xp),
        b=p.b,
    )


def matmul(x, w, out_in: bool = False):
    """``x @ w`` for ``w`` stored (n_in, n_out), or stored transposed (n_out, n_in) if ``out_in``.

    The inference path keeps its matrices transposed (see ``model.Prepared``): XLA's CPU kernels
    then contract along contiguous memory, which is faster at every batch size measured here
    (``benchmarks.harness.matmul_gflops`` times both layouts) and, for a single row, far more
    accurate (the row-vector kernel on the (n_in, n_out) layout sums each output sequentially over
    1,900 terms: on a 1,999-mer the port drifted 4.0e-5 from float64 at one row vs 7.2e-6
    transposed).

    A bfloat16 ``w`` (the "fast" mode, ``jax_port.precision``) rounds ``x`` to bfloat16 too and
    accumulates in float32; a float32 ``w`` takes the float32 path unchanged.
    """
    if w.dtype == jnp.bfloat16:
        x = x.astype(jnp.bfloat16)  # (B, n_in) f32 -> bf16, round to nearest even
        dims = (((x.ndim - 1,), (1 if out_in else 0,)), ((), ()))
        return jax.lax.dot_general(
            x, w, dims, precision=jax.lax.Precision.DEFAULT, preferred_element_type=jnp.float32
        )  # (B, n_in) . bf16 matrix -> (B, n_out) float32
    if not out_in:
        return jnp.dot(x, w)  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
    return jax.lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ())))  # (B, n_in) . (n_out, n_in)


def input_proj(
    x: BIn,
    wx: In4H,
    wmx: InH,
    b: Vec4H,
    xp=jnp,
    out_in: bool = False,
) -> tuple[B4H, BH]:
    """Input-side products of a step: ``x @ wx + b`` and ``x @ wmx`` (unirep.py L117-118).

    They do not depend on the recurrent state, so for layer 0 they are tabulated per token
    (on the host in float64 when ``xp`` is numpy). ``out_in``: matrices stored transposed
    (see :func:`matmul`; JAX arrays only).
    """
    if out_in:
        return matmul(x, wx, True) + b, matmul(x, wmx, True)  # (B, 4H), (B, H)
    xw = xp.dot(x, wx) + b  # (B, n_in) @ (n_in, 4H) + (4H,) -> (B, 4H)
    xm = xp.dot(x, wmx)  # (B, n_in) @ (n_in, H) -> (B, H)
    return xw, xm


def mlstm_step(
    xw: B4H,
    xm: BH,
    carry: Carry,
    wh: H4H,
    wmh: HH,
    out_in: bool = False,
) -> tuple[Carry, BH]:
    """One mLSTM step given the input-side products; mirrors unirep.py L75-126 (call).

    Args:
        xw: ``x @ wx + b`` for this step; xm: ``x @ wmx``.
        carry: ``(c_prev, h_prev)``.
        wh, wmh: weight-normalised recurrent matrices, (n_in, n_out) or, if ``out_in``,
            stored transposed (see :func:`matmul`).

    Returns:
        ``((c, h), h)``: the new carry and the output.
    """
    c_prev, h_prev = carry
    m = xm * matmul(h_prev, wmh, out_in)  # (B, H) * ((B, H) @ (H, H)) -> (B, H)
    z = xw + matmul(m, wh, out_in)  # (B, 4H) + (B, H) @ (H, 4H) -> (B, 4H)
    i, f, o, u = gate_split(z)  # 4 x (B, H)
    i, f, o = sigmoid(i), sigmoid(f), sigmoid(o)  # (B, H) each
    u = jnp.tanh(u)  # (B, H)
    c = f * c_prev + i * u  # (B, H)
    h = o * jnp.tanh(c)  # (B, H)
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


def logits(h: AnyH, w: HO, b: VecO):
    """The logit layer ``h @ fully_connected/weights + biases`` (unirep.py L372-376)."""
    return jnp.dot(h, w) + b  # (..., H) @ (H, 25) + (25,) -> (..., 25)
