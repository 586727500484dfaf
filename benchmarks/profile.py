"""cProfile of one implementation on one workload: ``unirep-port profile --impl tf|jax -o F.prof``.

The ``.prof`` file is readable by ``snakeviz F.prof`` and ``pstats``; the top 25 functions by
cumulative time are returned (and printed by the CLI). By default the first call (graph building
/ XLA compilation) runs before profiling starts, so the profile shows the steady state; pass
``include_compile=True`` (``--include-compile``) to profile the first call instead.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats

from unirep_port.atomic import atomic_file
from unirep_port.benchmarks import matrix, workloads
from unirep_port.benchmarks.adapters import IMPLS, make_adapter

ALIASES = {"tf": "tf-get_rep", "jax": "jax-port", "paper": "paper-10"}


def profile(
    impl: str = "jax",
    workload: str = "paper",
    out: str | os.PathLike = "profile.prof",
    size: int = 1900,
    weights: str = "auto",
    include_compile: bool = False,
    top: int = 25,
) -> str:
    """Profile ``impl`` on ``workload`` and write ``out``; return the top-``top`` table.

    Args:
        impl: ``tf`` (the original one-session-per-sequence ``get_rep``), ``jax`` (the port), or
            any name in ``benchmarks.adapters.IMPLS``.
        workload: ``paper`` (10 random sequences of length 10) or any workload name.
        out: path of the ``.prof`` file (written atomically).
        size: model size, 1900, 256 or 64.
        weights: ``auto``, ``published`` or ``random`` (see ``matrix.load_params``).
        include_compile: profile the first call rather than a warm one.
        top: rows of the returned table.
    """
    impl = ALIASES.get(impl, impl)
    if impl not in IMPLS:
        raise ValueError(f"unknown implementation {impl!r}; use tf, jax or one of {IMPLS}")
    wl = workloads.make(ALIASES.get(workload, workload))
    adapter = make_adapter(impl)
    adapter.prepare(size, matrix.load_params(size, weights)[0])
    seqs = list(wl.seqs)
    if not include_compile:
        adapter.run(seqs)
    prof = cProfile.Profile()
    prof.enable()
    adapter.run(seqs)
    prof.disable()
    out = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_file(out, mode=0o644) as tmp:
        prof.dump_stats(tmp)
    buf = io.StringIO()
    stats = pstats.Stats(out, stream=buf)
    buf.write(f"{impl} size {size} workload {wl.name} ({wl.tokens} tokens)\n")
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()
