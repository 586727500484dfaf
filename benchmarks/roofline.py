"""The one roofline: the fastest float32 GEMM this machine does at the engine's step shapes.

A speed figure divides tokens/s by :func:`roofline`'s ``tokens_per_s``: the best float32
GFLOP/s measured now, at the shapes of one model step, ``(B, H) x (H, 4H)`` and ``(B, H) x (H, H)``
at the batch B the engine used, over both weight layouts -- (n_in, n_out) and the transposed
(n_out, n_in) that the port keeps -- and every library installed: XLA (jax), oneDNN/MKL (PyTorch),
OpenBLAS (NumPy). Each contender runs ``steps`` dependent steps per timing (each step's output
feeds the next, so nothing is hoisted); the contenders are timed in interleaved windows, and each
one's figure is the median over windows, not its best burst.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from unirep_port.sizes import get_size


def _xla(x0: np.ndarray, w4: np.ndarray, w1: np.ndarray, steps: int, transposed: bool):
    import jax
    import jax.numpy as jnp

    h = x0.shape[1]
    dims = (((1,), (1,)), ((), ())) if transposed else (((1,), (0,)), ((), ()))
    a4 = jnp.asarray(np.ascontiguousarray(w4.T) if transposed else w4)
    a1 = jnp.asarray(np.ascontiguousarray(w1.T) if transposed else w1)
    x = jnp.asarray(x0)

    @jax.jit
    def loop(x, w4, w1):
        def body(_, x):
            a = jax.lax.dot_general(x, w4, dims, precision="highest")  # (B, H) . W4 -> (B, 4H)
            b = jax.lax.dot_general(x, w1, dims, precision="highest")  # (B, H) . W1 -> (B, H)
            return x + a[:, :h] * b  # (B, H); each step depends on the last

        return jax.lax.fori_loop(0, steps, body, x)

    jax.block_until_ready(loop(x, a4, a1))  # compile and warm
    return lambda: jax.block_until_ready(loop(x, a4, a1))


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
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((batch, hidden), dtype=np.float32)
    w4 = rng.standard_normal((hidden, 4 * hidden), dtype=np.float32) * 1e-3  # (n_in, n_out)
    w1 = rng.standard_normal((hidden, hidden), dtype=np.float32) * 1e-3
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
    """Each contender's median float32 GFLOP/s over ``windows`` interleaved windows."""
    if steps is None:
        steps = max(2, 512 // max(batch, 8)) if hidden >= 1024 else 64
    fns = contenders(hidden, batch, steps)
    flops = steps * 2 * batch * 5 * hidden * hidden  # (H, 4H) + (H, H) per step
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(windows):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: flops / statistics.median(v) / 1e9 for k, v in times.items()}


def roofline(size: int, batch: int, windows: int = 5, steps: int | None = None) -> dict:
    """The roofline of a ``size`` model at ``batch`` slots, measured now.

    Returns ``{"gflops", "tokens_per_s", "best", "batch", "median_gflops": {contender: ...}}``:
    ``gflops`` is the highest of the contenders' median GFLOP/s, ``best`` names it, and
    ``tokens_per_s`` is ``gflops`` over :func:`harness.flops_per_token` (one step per token).
    """
    from unirep_port.benchmarks.harness import flops_per_token

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
