"""``precision="fast"`` is chosen by a timing probe, not by CPU flags.

The decision (:func:`jax_port.precision.resolve`) is tested with the probe's result forced both
ways (the probe is monkeypatched, the decision is not); the probe's on-disk record with its
measurement replaced by a counter.
"""

from __future__ import annotations

import json
import logging

import jax
import numpy as np
import pytest

from unirep_port.jax_port import precision, probes


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_path", lambda *a: "avx512_bf16")
    monkeypatch.setattr(precision, "_SAID", set())
    return jax.devices("cpu")[0]


def test_fast_takes_bf16_where_the_probe_measures_it_faster(cpu, monkeypatch):
    monkeypatch.setattr(precision, "probe", lambda hidden, batch: 1.4)
    plan = precision.resolve("fast", cpu, 64, 1900)
    assert (plan.used, plan.notice) == ("bf16", None)


@pytest.mark.parametrize("speedup", [0.6, 1.0, precision.MARGIN - 0.01])
def test_fast_runs_highest_where_bf16_is_not_faster_by_the_margin(
    cpu, monkeypatch, caplog, speedup
):
    seen = []
    monkeypatch.setattr(precision, "probe", lambda hidden, batch: seen.append(batch) or speedup)
    with caplog.at_level(logging.WARNING, logger="jax_port"):
        plans = [precision.resolve("fast", cpu, 64, 1900) for _ in range(3)]
    assert {p.used for p in plans} == {"highest"} and seen == [64, 64, 64]
    assert f"{speedup:.2f}x" in plans[0].notice and "at 64 slots" in plans[0].notice
    assert len(caplog.records) == 1  # why, said once


def test_highest_and_no_bf16_unit_never_probe(cpu, monkeypatch):
    def boom(*a):
        raise AssertionError("probed")

    monkeypatch.setattr(precision, "probe", boom)
    assert precision.resolve("highest", cpu, 64).used == "highest"
    monkeypatch.setattr(precision, "cpu_bf16_path", lambda *a: "none")
    assert precision.resolve("fast", cpu, 64).used == "highest"


def test_probe_is_measured_once_per_key_and_kept_on_disk(tmp_path, monkeypatch):
    calls = []

    def measure(hidden, batch):
        calls.append((hidden, batch))
        return 2.0, 1.0  # float32 twice as slow

    f = tmp_path / "probe.json"
    monkeypatch.setattr(precision, "measure_step_gemm", measure)
    monkeypatch.setattr(probes, "store_file", lambda: f)
    monkeypatch.setattr(probes, "_MEMORY", {})
    assert precision.probe(1900, 64) == 2.0 and precision.probe(1900, 64) == 2.0
    assert calls == [(1900, 64)]
    rec = json.loads(f.read_text())[probes.key("fast", 1900, 64)]
    assert (rec["batch"], rec["speedup"]) == (64, 2.0)
    assert oct(f.stat().st_mode & 0o777) == "0o644"
    monkeypatch.setattr(probes, "_MEMORY", {})  # a new process: read back, not measured
    assert precision.probe(1900, 64) == 2.0 and calls == [(1900, 64)]
    assert precision.probe(1900, 8) == 2.0 and calls[-1] == (1900, 8)  # another batch: measured
    assert probes.key("fast", 1900, 8) != probes.key("fast", 1900, 64)
    assert probes.key("layout", 1900, 64) != probes.key("fast", 1900, 64)


def test_measure_step_gemm_times_both_dtypes():
    t32, t16 = precision.measure_step_gemm(64, 4, rounds=2)
    assert np.isfinite([t32, t16]).all() and t32 > 0 and t16 > 0


def test_fast_with_a_slow_probe_is_bitwise_highest(published, cpu, monkeypatch):
    from unirep_port import jax_port
    from unirep_port.jax_port import engine

    monkeypatch.setattr(precision, "probe", lambda hidden, batch: 0.5)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30)) for _ in range(16)]
    hi = jax_port.get_reps(seqs, published(64), 64, precision="highest")
    lo = jax_port.get_reps(seqs, published(64), 64, precision="fast")
    assert engine.last_plan().used == "highest"
    for a, b in zip(hi, lo):
        np.testing.assert_array_equal(a, b)
