"""The recurrent part of one mLSTM layer over a block of steps, with a hand-written backward pass.

Differentiating ``lax.scan`` lets JAX accumulate the weight gradients ``dL/dwh`` (H, 4H) and
``dL/dwmh`` (H, H) inside the reverse loop: a rank-B update of the whole matrix at every step,
which for the 1900 model moves ~2 x 72 MB per step whatever the batch. :func:`recurrent_block`
instead returns, from its reverse loop, the per-step cotangents only, and forms the weight
gradients after the loop as one matmul over the block, ``(K*B, H)^T @ (K*B, 4H)``.

The forward math is that of :func:`jax_port.cell.mlstm_step` (unirep.py L117-126); the tests
check the gradients against JAX's own differentiation of that function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from unirep_port.jax_port import cell


def _forward_step(wh, wmh, carry, inp):
    c_prev, h_prev = carry  # (B, H) each
    xw_t, xm_t, _keep = inp  # (B, 4H), (B, H), ()
    hm = jnp.dot(h_prev, wmh)  # (B, H) @ (H, H) -> (B, H)
    m = xm_t * hm  # (B, H)
    z = xw_t + jnp.dot(m, wh)  # (B, 4H) + (B, H) @ (H, 4H) -> (B, 4H)
    i, f, o, u = cell.gate_split(z)  # 4 x (B, H), order i, f, o, u (unirep.py L119)
    i, f, o, u = cell.sigmoid(i), cell.sigmoid(f), cell.sigmoid(o), jnp.tanh(u)
    c = f * c_prev + i * u  # (B, H)
    tc = jnp.tanh(c)  # (B, H)
    h = o * tc  # (B, H)
    return (c, h), (h, (c_prev, h_prev, xm_t, hm, m, i, f, o, u, tc))


@jax.custom_vjp
def recurrent_block(xw, xm, c0, h0, wh, wmh, keep):
    """Run one layer's recurrence over K steps given its input products.

    Args:
        xw: (K, B, 4H) ``x @ wx + b`` per step; xm: (K, B, H) ``x @ wmx`` per step.
        c0, h0: (B, H) state entering the block.
        wh, wmh: weight-normalised recurrent matrices (H, 4H) and (H, H).
        keep: (K,) float32; 0 where the gradient into the state entering that step is cut
            (truncated BPTT), 1 elsewhere. The forward values do not depend on it.

    Returns:
        ``(c, h, hs)``: the final state (B, H) x 2 and the outputs hs (K, B, H).
    """
    (c, h), (hs, _res) = jax.lax.scan(
        lambda cr, inp: _forward_step(wh, wmh, cr, inp), (c0, h0), (xw, xm, keep)
    )
    return c, h, hs


def _fwd(xw, xm, c0, h0, wh, wmh, keep):
    (c, h), (hs, res) = jax.lax.scan(
        lambda cr, inp: _forward_step(wh, wmh, cr, inp), (c0, h0), (xw, xm, keep)
    )
    return (c, h, hs), (res, wh, wmh, keep)


def _bwd(saved, cts):
    res, wh, wmh, keep = saved
    gc, gh, ghs = cts  # (B, H), (B, H), (K, B, H)

    def back(carry, inp):
        dc, dh = carry  # cotangents of the state leaving this step
        (c_prev, h_prev, xm_t, hm, m, i, f, o, u, tc), gh_t, keep_t = inp
        dh = dh + gh_t  # (B, H): the output h is also the carried h
        do = dh * tc
        dc = dc + dh * o * (1.0 - tc * tc)  # through h = o * tanh(c)
        di, df, du = dc * u, dc * c_prev, dc * i
        dz = jnp.concatenate(
            [di * i * (1.0 - i), df * f * (1.0 - f), do * o * (1.0 - o), du * (1.0 - u * u)],
            axis=-1,
        )  # (B, 4H) in the i, f, o, u order of gate_split
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
