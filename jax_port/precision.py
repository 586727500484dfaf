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

Where "fast" is not faster it runs "highest" and says so once per process (logger
``jax_port``): on a CPU without bf16 dot units (neither ``avx512_bf16`` nor ``amx_bf16`` in
``/proc/cpuinfo``), on a GPU before compute capability 8.0, and on the CPU for batches under
:data:`CPU_MIN_BATCH` slots (XLA's single-row bf16 kernel is slower than float32's; see
``benchmarks/results/fastmode-cpu.json``). ``"bf16"`` and ``"tf32"`` name one path explicitly (for
benchmarks); ``"tf32"`` exists on GPUs only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import jax.numpy as jnp

PRECISIONS = ("highest", "fast", "bf16", "tf32")
FAST_SPLIT = ("wh", "wx")
CPU_MIN_BATCH = 8
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
def cpu_bf16_path(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's bf16 dot unit: "amx_bf16", "avx512_bf16" or "none" (from the kernel's flags).

    Only x86 paths are recognised: they are the ones measured (development CPU: avx512_bf16;
    issue 11: AMX). Anything else (ARM, no ``/proc/cpuinfo``) reads as "none", so "fast"
    runs "highest" there rather than a path nobody measured.
    """
    try:
        with open(cpuinfo) as fh:
            flags = set()
            for line in fh:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return "none"
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


def resolve(precision: str, device, batch: int) -> Plan:
    """The :class:`Plan` for ``precision`` on ``device`` (a jax device) at ``batch`` slots."""
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
    elif platform == "cpu" and batch < CPU_MIN_BATCH and precision == "fast":
        notice = (
            f"precision='fast': {batch} batch slot(s) < {CPU_MIN_BATCH}; XLA's CPU bf16 kernel "
            "is slower than float32 for so few rows, running 'highest' (float32)"
        )
    if notice is not None:
        say(notice)
        return Plan(precision, "highest", "highest", path, notice)
    if precision == "tf32":
        return Plan(precision, "tf32", "tensorfloat32", path)
    return Plan(precision, "bf16", "highest", path)


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
