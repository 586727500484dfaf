"""The model step's GEMMs in a compiled loop, timed: the one GEMM timing loop of the kit.

Every GEMM throughput figure -- the fast-mode probe (:mod:`jax_port.precision`), the roofline
(``benchmarks.roofline``), the fast-mode and device benchmarks -- times this loop:
``(B, H) . W4`` (4H wide) and, where asked, ``(B, H) . W1`` (H wide), the shapes of one model
step, in a jitted ``fori_loop`` of ``steps`` dependent steps (each step's output feeds the next,
so nothing is hoisted or overlapped), after a first call that compiles and warms it. How many
steps one timing runs is :func:`steps_for`'s rule, the same for every caller; contenders are
timed in interleaved rounds (:func:`interleaved`), so machine load hits each alike.

Precisions: ``"highest"`` (float32, ``Precision.HIGHEST``), ``"tf32"`` (float32 inputs, TF32
units; GPUs) and ``"bf16"`` (bfloat16 inputs, float32 accumulation, as ``cell.matmul``
multiplies in the fast mode).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

PRECISIONS = ("highest", "tf32", "bf16")
_DOT_PRECISION = {"highest": "highest", "tf32": "tensorfloat32", "bf16": "default"}


def steps_for(hidden: int, batch: int, platform: str = "cpu") -> int:
    """Dependent steps per timing: about 512 batch rows of work for a wide model (at least 2
    steps), 64 steps for a narrow one on a CPU; 32 on an accelerator, whose steps are short
    beside a call's dispatch."""
    if platform != "cpu":
        return 32
    return max(2, 512 // max(batch, 8)) if hidden >= 1024 else 64


def step_arrays(hidden: int, batch: int, seed: int = 0):
    """Seeded float32 ``x0`` (B, H), ``w4`` (H, 4H) and ``w1`` (H, H), weights in (n_in, n_out)
    and scaled by 1e-3 so a long loop stays finite."""
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((batch, hidden), dtype=np.float32)
    w4 = rng.standard_normal((hidden, 4 * hidden), dtype=np.float32) * 1e-3  # (n_in, n_out)
    w1 = rng.standard_normal((hidden, hidden), dtype=np.float32) * 1e-3
    return x0, w4, w1


def flops(hidden: int, batch: int, steps: int, with_w1: bool = True) -> int:
    """Multiply-add FLOPs (2 each) of one timing: ``(B, H) . (H, 4H)`` and, with ``w1``,
    ``(B, H) . (H, H)`` per step."""
    return steps * 2 * batch * hidden * hidden * (5 if with_w1 else 4)


def loop(
    x0: np.ndarray,
    w4: np.ndarray,
    w1: np.ndarray | None,
    steps: int,
    precision: str = "highest",
    transposed: bool = True,
) -> Callable[[], object]:
    """A warm callable running ``steps`` dependent steps ``x <- x + (x . W4)[:, :H] (* x . W1)``.

    ``w4`` (H, 4H) and ``w1`` (H, H) are given as (n_in, n_out); ``transposed`` keeps them as
    (n_out, n_in), the port's layout, else as given. ``w1`` None times the 4H-wide product only
    (the one the fast mode rounds). Compiled and run once before it is returned.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    h = x0.shape[1]
    dt = jnp.bfloat16 if precision == "bf16" else jnp.float32
    prec = _DOT_PRECISION[precision]
    dims = (((1,), (1,)), ((), ())) if transposed else (((1,), (0,)), ((), ()))

    def weight(w):
        return jnp.asarray(np.ascontiguousarray(w.T) if transposed else w, dt)

    ws = (weight(w4),) if w1 is None else (weight(w4), weight(w1))
    x = jnp.asarray(x0)

    @jax.jit
    def run(x, ws):
        def body(_, x):
            xi = x.astype(dt)
            a = jax.lax.dot_general(xi, ws[0], dims, prec, preferred_element_type=jnp.float32)
            y = a[:, :h]  # (B, H) . W4 -> (B, 4H), its first H columns
            if len(ws) == 2:
                y = y * jax.lax.dot_general(
                    xi, ws[1], dims, prec, preferred_element_type=jnp.float32
                )  # (B, H) . W1 -> (B, H)
            return x + y  # (B, H); each step depends on the last

        return jax.lax.fori_loop(0, steps, body, x)

    jax.block_until_ready(run(x, ws))  # compile and warm
    return lambda: jax.block_until_ready(run(x, ws))


def interleaved(fns: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each warm callable over ``rounds`` rounds, one call of each per round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def median_s(times: Mapping[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in times.items()}


def gflops(
    hidden: int,
    batch: int,
    precision: str = "highest",
    rounds: int = 5,
    steps: int | None = None,
    transposed: bool = True,
) -> float:
    """Median GFLOP/s of both step products at ``precision`` (``steps``: :func:`steps_for`)."""
    if steps is None:
        steps = steps_for(hidden, batch, jax.default_backend())
    x0, w4, w1 = step_arrays(hidden, batch)
    fn = loop(x0, w4, w1, steps, precision, transposed)
    t = median_s(interleaved({"one": fn}, rounds))["one"]
    return flops(hidden, batch, steps) / t / 1e9
