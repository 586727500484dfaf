"""The small-jobs benchmark runs end to end on the 64 model and records what its tables need.

Real published 64 weights; one warm round, no peers (their adapters are exercised by the
benchmark matrix). The hand port, its plain (unskewed) loop, its chunked engine, the floor and
the A/A control run; the plain loop and the chunked engine must give the hand port's bits
(``tests/test_skewed_loop.py``, ``tests/test_single_loop.py`` state why), which the record's
``max_abs_h_avg_vs_hand`` shows.
"""

from __future__ import annotations

import json

import numpy as np

from unirep_port.benchmarks import small_batch, workloads
from unirep_port.jax_port import layout


def test_the_uniform_workload_is_seeded_and_in_range():
    a, b = workloads.make("uniform-100-50-500"), workloads.make("uniform-100-50-500")
    lengths = [len(s) for s in a.seqs]
    assert a.seqs == b.seqs and len(lengths) == 100
    assert min(lengths) >= 50 and max(lengths) <= 500 and len(set(lengths)) > 50
    assert workloads.make("uniform-100-50-500", seed=1).seqs != a.seqs


def test_one_cell_end_to_end(tmp_path):
    recs = small_batch.run(
        sizes=(64,), rounds=1, peers=(), jobs=["1x238"], skew_batches=(1, 8), fresh=1
    )
    cells = {r["impl"]: r for r in recs if r.get("workload") == "1x238"}
    assert set(cells) == {"jax-port", "jax-port-plain", "jax-port-chunked", "floor",
                          "jax-port-again"}  # fmt: skip
    assert cells["jax-port"]["vs_hand"] == 1.0 and cells["jax-port"]["tokens"] == 239
    assert cells["jax-port"]["first_answer_vs_hand"] == 1.0
    assert all(1 <= c["calls_per_round"] <= small_batch.MAX_CALLS for c in cells.values())
    assert cells["jax-port-plain"]["max_abs_h_avg_vs_hand"] == 0.0  # skewed or not: same bits
    assert cells["jax-port-chunked"]["max_abs_h_avg_vs_hand"] == 0.0
    assert cells["jax-port-again"]["max_abs_h_avg_vs_hand"] == 0.0
    lay = next(r["layout"] for r in recs if "layout" in r)
    assert [x["batch"] for x in lay] == [1, 8, 64] and lay[0]["out_in"]  # one row: transposed
    assert all(x["out_in"] == (x["speedup"] < layout.MARGIN) for x in lay[1:])
    sweep = next(r["skew"] for r in recs if "skew" in r)
    assert [x["batch"] for x in sweep] == [1, 8] and all(x["same_bits"] for x in sweep)
    assert [x["default_skewed"] for x in sweep] == [True, False]  # engine.use_skewed's rule
    # a fresh process with an empty folder compiles the loop and keeps it; the next one loads it
    counts = next(r for r in recs if "fresh_process_compile_counts" in r)
    (cold,), (later,) = counts["fresh_process_compile_counts"].values()
    assert cold["aot_stores"] >= 1 and cold["aot_hits"] == 0 and cold["compiles"] >= 1, cold
    assert later["aot_hits"] == cold["aot_stores"] and later["compiles"] == 0, later
    hand = cells["jax-port"]
    assert len(hand["cold_first_s"]) == len(hand["later_first_s"]) == 1
    assert hand["cold_first_vs_hand"] == hand["later_first_vs_hand"] == 1.0
    assert "cold_first_s" not in cells["floor"]  # only the hand port and the peers
    mem = next(r["memory_limit"] for r in recs if "memory_limit" in r)
    assert mem["weight_bytes_per_step"] > 0 and np.isfinite(mem["step_over_memory_limit"])
    path = tmp_path / "sb.json"
    path.write_text(json.dumps({"records": recs}))
    assert "| 64 | 1x238 |" in small_batch.table(str(path), compact=True)
    files = small_batch.figure(str(path), str(tmp_path))
    assert all((tmp_path / f).stat().st_size > 0 for f in files)
