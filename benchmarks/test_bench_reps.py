"""pytest-benchmark matrix: implementation x model size x workload x device.

Run: ``pytest benchmarks [--bench-quick] [-m "not gpu"] [--benchmark-json out.json]``.
Each test times one cell with ``benchmark.pedantic`` (explicit rounds, one iteration each) after
a separate first call whose time is ``compile_s`` in ``benchmark.extra_info``, together with the
other record fields (tokens/s, roofline, weights source, agreement with the first
implementation on the same cell). Trimmed cells (see :mod:`benchmarks.matrix`) and peers that
cannot run are skipped with the reason, and still recorded.
"""

from __future__ import annotations

import pytest

from unirep_port.benchmarks import harness


def test_reps(bench_cell, benchmark, runner_for, record_result, pytestconfig):
    impl, size, name, device = bench_cell
    runner = runner_for(device)

    def timer(fn, rounds):
        import time

        t0 = time.perf_counter()
        harness._materialise(fn())
        compile_s = time.perf_counter() - t0
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable: time the rounds ourselves
            timing = harness.time_calls(fn, rounds)
            timing.compile_s = compile_s
            return timing
        return harness.Timing(compile_s=compile_s, warm=list(stats.stats.data))

    quick = pytestconfig.getoption("--bench-quick")
    rec = runner.run_cell(impl, size, name, quick=quick, timer=timer)
    record_result(rec)
    if rec["skipped"]:
        pytest.skip(rec["skipped"])
    benchmark.extra_info.update(rec)
    assert rec["tokens_per_s"] > 0
    assert rec["agreement"]["max_abs_h_avg"] < 1e-3, rec["agreement"]
