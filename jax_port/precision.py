"""Matmul precision modes of the reps engine: what "fast" means on this machine, decided once.

``"highest"``: every matmul in float32 (``Precision.HIGHEST``); the certified default.

``"fast"``: the matmuls named below take bfloat16 inputs and accumulate in float32
(``preferred_element_type=float32``). The matrices are rounded to bfloat16 once, in
:func:`cast_prepared`; the state is rounded at each product (:func:`jax_port.cell.matmul` keys on
the matrix's dtype). The cell state, the gates' nonlinearities, the weight norm (done in float64
on the host), the per-token input tables of layer 0, the reps and the logit layer stay float32.

Which matmuls (:data:`FAST_SPLIT`): the 4H-wide ones, ``m @ wh`` in every cell and, in the
stacked models' layers > 0, ``x @ wx`` (80% of a step's FLOPs); the H-wide ``h @ wmh`` and
``x @ wmx``, which feed the multiplicative gate ``m = (x @ wmx) * (h @ wmh)``, stay float32.
Chosen by measurement (rounding all four matrices instead raised the per-position ``hs`` and
the ``h_avg`` error for little speed): the errors and what each choice buys over "highest" per
size (``chosen`` vs ``all_four``) are the ``split`` table of
``benchmarks/results/fastmode-cpu.json``, with the machine they were measured on.

Where "fast" is not faster it runs "highest" and says why once per process (logger
``jax_port``). On a CPU, "fast" takes the bf16 path only where :func:`probe` -- a short timing of
the step's 4H-wide GEMM in bfloat16 against float32 at the run's batch, on this machine --
measures bf16 at least :data:`MARGIN` times as fast (so "fast" is never measurably slower than
"highest"); the probe's result is kept in memory and, where the persistent compilation cache is
on, in the probe store (:mod:`jax_port.probes`), keyed by CPU model and flags, jax version,
width and batch. A CPU without bf16 dot units (neither ``avx512_bf16`` nor ``amx_bf16`` in
``/proc/cpuinfo``) and a GPU before compute capability 8.0 run "highest" without probing.
``"bf16"`` and ``"tf32"`` name one path explicitly (for benchmarks); ``"tf32"`` exists on GPUs
only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import jax.numpy as jnp

from unirep_port.jax_port import probes, step_gemm
from unirep_port.machine import CPUINFO, cpu_flags

PRECISIONS = ("highest", "fast", "bf16", "tf32")
FAST_SPLIT = ("wh", "wx")
MARGIN = 1.05  # bf16 must time >= 5% faster: noise never makes "fast" > 3% slower
_LOG = logging.getLogger("jax_port")
_SAID: set[str] = set()


@dataclass(frozen=True)
class Plan:
    """How one engine call multiplies.

    ``requested``: the precision asked for; ``used``: "highest", "bf16" or "tf32";
    ``matmul_precision``: the value for ``jax.default_matmul_precision``; ``path``: the hardware
    path ("amx_bf16", "avx512_bf16", "cuda_sm80+", or "none"); ``notice``: why "fast" fell back.
    """

    requested: str
    used: str
    matmul_precision: str
    path: str
    notice: str | None = None


@functools.cache
def cpu_bf16_path(cpuinfo: str = CPUINFO) -> str:
    """The CPU's bf16 dot unit: "amx_bf16", "avx512_bf16" or "none" (from the kernel's flags).

    Only x86 paths are recognised: they are the ones measured (development CPU: avx512_bf16;
    issue 11: AMX). Anything else (ARM, no ``/proc/cpuinfo``) reads as "none", so "fast"
    runs "highest" there rather than a path nobody measured.
    """
    flags = set(cpu_flags(cpuinfo))  # [] without a cpuinfo
    if "amx_bf16" in flags:
        return "amx_bf16"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return "none"


def gpu_bf16_path(device) -> str:
    """ "cuda_sm80+" for a CUDA device of compute capability >= 8.0 (bf16 and TF32 tensor
    cores), else "none"."""
    cc = getattr(device, "compute_capability", None)
    try:
        return "cuda_sm80+" if cc is not None and float(cc) >= 8.0 else "none"
    except (TypeError, ValueError):
        return "none"


def resolve(precision: str, device, batch: int, hidden: int = 1900) -> Plan:
    """The :class:`Plan` for ``precision`` on ``device`` (a jax device) at ``batch`` slots of a
    ``hidden``-wide model."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    platform = device.platform
    path = cpu_bf16_path() if platform == "cpu" else gpu_bf16_path(device)
    if precision == "highest":
        return Plan(precision, "highest", "highest", path)
    if precision == "tf32" and platform == "cpu":
        raise ValueError("precision 'tf32' exists on GPUs only")
    notice = None
    if path == "none":
        notice = (
            f"precision={precision!r}: this {platform} has no bf16 dot unit "
            f"({_what_lacks(platform)}); running 'highest' (float32)"
        )
    elif platform == "cpu" and precision == "fast":
        speedup = probe(hidden, batch)
        if speedup < MARGIN:
            notice = (
                f"precision='fast': on this CPU the bf16 step GEMM measured {speedup:.2f}x the "
                f"speed of float32 at {batch} slots (H={hidden}; needs >= {MARGIN}x); "
                "running 'highest' (float32)"
            )
    if notice is not None:
        say(notice)
        return Plan(precision, "highest", "highest", path, notice)
    if precision == "tf32":
        return Plan(precision, "tf32", "tensorfloat32", path)
    return Plan(precision, "bf16", "highest", path)


def probe(hidden: int, batch: int) -> float:
    """bf16 over float32 speed of the step GEMM ``(B, H) . (4H, H)`` on this machine (> 1: bf16
    is faster); measured once per machine and shape, then read back (:mod:`jax_port.probes`)."""

    def measure() -> dict:
        t32, t16 = measure_step_gemm(hidden, batch)
        return {"f32_s": t32, "bf16_s": t16, "speedup": t32 / t16}

    return float(probes.measured("fast", hidden, batch, measure)["speedup"])


def measure_step_gemm(hidden: int, batch: int, rounds: int = 3) -> tuple[float, float]:
    """Median seconds of the step's 4H-wide GEMM ``(B, H) . (4H, H)`` in a loop of dependent
    steps (:mod:`jax_port.step_gemm`, its step rule), float32 and bf16 inputs (float32
    accumulation), timed in interleaved rounds: ``(f32_s, bf16_s)``. Three rounds: the shared
    step rule runs twice the steps this probe ran before it was shared, so three rounds keep
    the probe about as short, with more work in each timing."""
    steps = step_gemm.steps_for(hidden, batch)
    x0, w4, _ = step_gemm.step_arrays(hidden, batch)
    fns = {p: step_gemm.loop(x0, w4, None, steps, p) for p in ("highest", "bf16")}
    med = step_gemm.median_s(step_gemm.interleaved(fns, rounds))
    return med["highest"], med["bf16"]


def _what_lacks(platform: str) -> str:
    if platform == "cpu":
        return "neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo"
    return "compute capability < 8.0 or not a CUDA device"


def say(notice: str) -> None:
    """Log ``notice`` as a warning of logger ``jax_port``, once per process."""
    if notice not in _SAID:
        _SAID.add(notice)
        _LOG.warning("%s", notice)


def cast_prepared(prep, split: tuple[str, ...] = FAST_SPLIT):
    """``prep`` (a :class:`jax_port.model.Prepared`) with the ``split`` matrices of every cell
    rounded to bfloat16 (round to nearest even), everything else (``cell`` included) unchanged.

    Not cached here: :meth:`jax_port.model.Model.cast_weights` keeps the result on the model.
    """
    cells = tuple(
        c._replace(**{k: jnp.asarray(getattr(c, k), jnp.bfloat16) for k in split})
        for c in prep.cells
    )  # (n_out, n_in) each, bf16
    return prep.replace(cells=cells)
