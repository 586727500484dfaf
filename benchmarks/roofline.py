"""The one roofline: the fastest float32 GEMM this machine does at the engine's step shapes.

A speed figure divides tokens/s by :func:`roofline`'s ``tokens_per_s``: the best float32
GFLOP/s measured now, at the shapes of one model step, ``(B, H) x (H, 4H)`` and ``(B, H) x (H, H)``
at the batch B the engine used, over both weight layouts -- (n_in, n_out) and the transposed
(n_out, n_in) that the port keeps -- and every library installed: XLA (jax), oneDNN/MKL (PyTorch),
OpenBLAS (NumPy). Each contender runs ``steps`` dependent steps per timing (each step's output
feeds the next, so nothing is hoisted); the contenders are timed in interleaved windows, and each
one's figure is the median over windows, not its best burst. XLA's loop, the step rule and the
windows are ``jax_port.step_gemm``'s, the kit's one GEMM timing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unirep_port.jax_port import step_gemm
from unirep_port.sizes import get_size


def _xla(x0: np.ndarray, w4: np.ndarray, w1: np.ndarray, steps: int, transposed: bool):
    return step_gemm.loop(x0, w4, w1, steps, "highest", transposed)


def _torch(x0: np.ndarray, w4: np.ndarray, w1: np.ndarray, steps: int, transposed: bool):
    import torch

    h = x0.shape[1]
    x = torch.from_numpy(x0)
    if transposed:  # (n_out, n_in) contiguous, multiplied as x @ W.T
        a4, a1 = (
            torch.from_numpy(np.ascontiguousarray(w4.T)),
            torch.from_numpy(np.ascontiguousarray(w1.T)),
        )
        mm = lambda x, w: x @ w.T  # noqa: E731
    else:
        a4, a1 = torch.from_numpy(w4), torch.from_numpy(w1)
        mm = torch.matmul

    def run():
        with torch.inference_mode():
            y = x
            for _ in range(steps):
                y = y + mm(y, a4)[:, :h] * mm(y, a1)  # (B, H)
        return y

    run()
    return run


def _numpy(x0: np.ndarray, w4: np.ndarray, w1: np.ndarray, steps: int, transposed: bool):
    h = x0.shape[1]
    a4 = np.ascontiguousarray(w4.T) if transposed else w4
    a1 = np.ascontiguousarray(w1.T) if transposed else w1

    def run():
        y = x0
        for _ in range(steps):
            if transposed:
                y = y + (y @ a4.T)[:, :h] * (y @ a1.T)  # (B, H) . (4H, H)^T -> (B, 4H)
            else:
                y = y + (y @ a4)[:, :h] * (y @ a1)  # (B, H) @ (H, 4H) -> (B, 4H)
        return y

    run()
    return run


LIBRARIES = {"xla": _xla, "torch": _torch, "numpy": _numpy}


def contenders(hidden: int, batch: int, steps: int) -> dict[str, Callable[[], object]]:
    """``"library/layout" -> warm callable`` for every library that imports here."""
    x0, w4, w1 = step_gemm.step_arrays(hidden, batch)
    out = {}
    for lib, make in LIBRARIES.items():
        for transposed in (False, True):
            try:
                out[f"{lib}/{'out_in' if transposed else 'in_out'}"] = make(
                    x0, w4, w1, steps, transposed
                )
            except ImportError:
                break
    return out


def median_gflops(hidden: int, batch: int, windows: int = 5, steps: int | None = None) -> dict:
    """Each contender's median float32 GFLOP/s over ``windows`` interleaved windows
    (``steps``: ``jax_port.step_gemm.steps_for``, the rule of every GEMM timing)."""
    if steps is None:
        steps = step_gemm.steps_for(hidden, batch)
    fns = contenders(hidden, batch, steps)
    med = step_gemm.median_s(step_gemm.interleaved(fns, windows))
    return {k: step_gemm.flops(hidden, batch, steps) / v / 1e9 for k, v in med.items()}


def flops_per_token(size: int) -> int:
    """Matmul FLOPs of one model step for one sequence (multiply-add = 2 FLOPs).

    Each layer's h-side costs ``m = h @ wmh`` (H, H) and ``m @ wh`` (H, 4H). Layer 0's x-side
    (10-wide embedding times ``wmx``/``wx``) depends only on the token, so it is a table lookup
    and not counted; layers > 0 of the 256/64 stacks also multiply their input (the previous
    layer's h, width H) by ``wmx`` (H, H) and ``wx`` (H, 4H). The 25-way logit layer is not
    part of the reps and not counted.
    """
    m = get_size(size)
    h = m.hidden
    per_side = 2 * (h * h + h * 4 * h)  # (1, H) @ (H, H) and (1, H) @ (H, 4H)
    return per_side * m.n_layers + per_side * (m.n_layers - 1)


def roofline(size: int, batch: int, windows: int = 5, steps: int | None = None) -> dict:
    """The roofline of a ``size`` model at ``batch`` slots, measured now.

    Returns ``{"gflops", "tokens_per_s", "best", "batch", "median_gflops": {contender: ...}}``:
    ``gflops`` is the highest of the contenders' median GFLOP/s, ``best`` names it, and
    ``tokens_per_s`` is ``gflops`` over :func:`flops_per_token` (one step per token).
    """
    med = median_gflops(get_size(size).hidden, batch, windows, steps)
    best = max(med, key=med.get)
    return {
        "batch": batch,
        "gflops": med[best],
        "tokens_per_s": med[best] * 1e9 / flops_per_token(size),
        "best": best,
        "median_gflops": med,
        "windows": windows,
    }
