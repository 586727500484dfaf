"""The recurrent part of one mLSTM layer over a block of steps, with a hand-written backward pass.

Differentiating ``lax.scan`` lets JAX accumulate the weight gradients ``dL/dwh`` (H, 4H) and
``dL/dwmh`` (H, H) inside the reverse loop: a rank-B update of the whole matrix at every step,
which for the 1900 model moves ~2 x 72 MB per step whatever the batch. :func:`recurrent_block`
instead returns, from its reverse loop, the per-step cotangents only, and forms the weight
gradients after the loop as one matmul over the block, ``(K*B, H)^T @ (K*B, 4H)``.

The forward math is that of :func:`jax_port.cell.mlstm_step` (unirep.py L117-126) with the
model's :class:`jax_port.cell.CellFns` (static argument ``fns``): its ``gate_split``, ``sigmoid``
and ``tanh``. For the default ones the backward pass uses their closed-form derivatives
(``s * (1 - s)``, ``1 - t * t``); for any other (a planted bug, a variant under study) it
differentiates the record's own functions with ``jax.vjp``, so the gradient is that of the
forward actually run. The tests check the gradients against JAX's own differentiation of
``mlstm_step``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unirep_port.jax_port import cell


def _closed_form(fns: cell.CellFns) -> bool:
    """Whether the backward may use the closed-form derivatives of the default functions."""
    d = cell.DEFAULT_CELL
    return fns.gate_split is d.gate_split and fns.sigmoid is d.sigmoid and fns.tanh is d.tanh


def _gates(fns: cell.CellFns, z):
    i, f, o, u = fns.gate_split(z)  # 4 x (B, H), order i, f, o, u (unirep.py L119)
    return fns.sigmoid(i), fns.sigmoid(f), fns.sigmoid(o), fns.tanh(u)


def _forward_step(fns, wh, wmh, carry, inp):
    c_prev, h_prev = carry  # (B, H) each
    xw_t, xm_t, _keep = inp  # (B, 4H), (B, H), ()
    hm = jnp.dot(h_prev, wmh)  # (B, H) @ (H, H) -> (B, H)
    m = xm_t * hm  # (B, H)
    z = xw_t + jnp.dot(m, wh)  # (B, 4H) + (B, H) @ (H, 4H) -> (B, 4H)
    i, f, o, u = _gates(fns, z)  # (B, H) each
    c = f * c_prev + i * u  # (B, H)
    tc = fns.tanh(c)  # (B, H)
    h = o * tc  # (B, H)
    res = (c_prev, h_prev, xm_t, hm, m, i, f, o, u, tc)
    if not _closed_form(fns):
        res = (*res, z, c)  # pre-activations, for jax.vjp of the record's own functions
    return (c, h), (h, res)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def recurrent_block(fns, xw, xm, c0, h0, wh, wmh, keep):
    """Run one layer's recurrence over K steps given its input products.

    Args:
        fns: the :class:`jax_port.cell.CellFns` (static, hashable).
        xw: (K, B, 4H) ``x @ wx + b`` per step; xm: (K, B, H) ``x @ wmx`` per step.
        c0, h0: (B, H) state entering the block.
        wh, wmh: weight-normalised recurrent matrices (H, 4H) and (H, H).
        keep: (K,) float32; 0 where the gradient into the state entering that step is cut
            (truncated BPTT), 1 elsewhere. The forward values do not depend on it.

    Returns:
        ``(c, h, hs)``: the final state (B, H) x 2 and the outputs hs (K, B, H).
    """
    (c, h), (hs, _res) = jax.lax.scan(
        lambda cr, inp: _forward_step(fns, wh, wmh, cr, inp), (c0, h0), (xw, xm, keep)
    )
    return c, h, hs


def _fwd(fns, xw, xm, c0, h0, wh, wmh, keep):
    (c, h), (hs, res) = jax.lax.scan(
        lambda cr, inp: _forward_step(fns, wh, wmh, cr, inp), (c0, h0), (xw, xm, keep)
    )
    return (c, h, hs), (res, wh, wmh, keep)


def _bwd(fns, saved, cts):
    res, wh, wmh, keep = saved
    gc, gh, ghs = cts  # (B, H), (B, H), (K, B, H)
    closed = _closed_form(fns)

    def back(carry, inp):
        dc, dh = carry  # cotangents of the state leaving this step
        r, gh_t, keep_t = inp
        c_prev, h_prev, xm_t, hm, m, i, f, o, u, tc = r[:10]
        dh = dh + gh_t  # (B, H): the output h is also the carried h
        do = dh * tc
        if closed:
            dc = dc + dh * o * (1.0 - tc * tc)  # through h = o * tanh(c)
        else:
            dc = dc + jax.vjp(fns.tanh, r[11])[1](dh * o)[0]  # (B, H), through o * tanh(c)
        di, df, du = dc * u, dc * c_prev, dc * i
        if closed:
            dz = jnp.concatenate(
                [di * i * (1.0 - i), df * f * (1.0 - f), do * o * (1.0 - o), du * (1.0 - u * u)],
                axis=-1,
            )  # (B, 4H) in the i, f, o, u order of gate_split
        else:
            dz = jax.vjp(functools.partial(_gates, fns), r[10])[1]((di, df, do, du))[0]  # (B, 4H)
        dm = jnp.dot(dz, wh.T)  # (B, 4H) @ (4H, H) -> (B, H)
        dxm = dm * hm  # (B, H)
        dhm = dm * xm_t  # (B, H)
        dh_prev = jnp.dot(dhm, wmh.T) * keep_t  # (B, H) @ (H, H) -> (B, H)
        dc_prev = dc * f * keep_t  # (B, H)
        return (dc_prev, dh_prev), (dz, dxm, dhm)

    (dc0, dh0), (dz, dxm, dhm) = jax.lax.scan(back, (gc, gh), (res, ghs, keep), reverse=True)
    m, h_prev = res[4], res[1]  # (K, B, H) each
    dwh = jnp.einsum("kbh,kbg->hg", m, dz)  # (K*B, H)^T @ (K*B, 4H) -> (H, 4H)
    dwmh = jnp.einsum("kbh,kbg->hg", h_prev, dhm)  # (K*B, H)^T @ (K*B, H) -> (H, H)
    return dz, dxm, dc0, dh0, dwh, dwmh, jnp.zeros_like(keep)


recurrent_block.defvjp(_fwd, _bwd)
