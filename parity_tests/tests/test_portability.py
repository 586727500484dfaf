"""The portability matrix (issue 10, items 3 and 5): verdicts under other thread counts, kernels
and batch compositions, and run-to-run reproducibility.

The slow test runs ``portability.run_matrix`` (each setting in a fresh process; the suite's own
verdicts: ``compare.compare`` against the goldens, ``engine.run_parity`` on the live panel,
``golden.drift_alarm``) and adds a ``portability`` section to the parity report. The fast tests
check the machinery that makes the matrix mean something: the settings reach the worker, the
controlled variables do not leak in from the caller's shell, bad requests are named.
"""

from __future__ import annotations

import pytest

from unirep_port.parity import portability
from unirep_port.parity.paths import results_dir
from unirep_port.parity.portability import Setting, settings, worker_env


def test_settings_cover_threads_onednn_xla_caps():
    names = [s.name for s in settings((0, 1))]
    assert names[:3] == ["baseline", "baseline-repeat", "threads-1"]
    assert "threads-2" not in names  # two CPUs: 2 threads is the baseline
    assert {"onednn-off", "onednn-avx2", "onednn-avx512core", "xla-avx2", "xla-sse4_2"} <= set(
        names
    )
    four = {s.name: s for s in settings((0, 1, 2, 3))}
    assert four["threads-2"].cpus == (0, 1)
    assert four["threads-1"].cpus == (0,)
    assert four["threads-1"].env["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"
    assert four["baseline"].cpus is None and four["baseline"].env == {}
    lean = {s.name: s.sizes for s in settings((0, 1))}
    full = {s.name: s.sizes for s in settings((0, 1), full=True)}
    assert 1900 in lean["baseline-repeat"] and 1900 in lean["threads-1"]
    assert 1900 not in lean["xla-sse4_2"] and 1900 in full["xla-sse4_2"]


def test_worker_env_drops_the_callers_controlled_variables():
    shell = {"PATH": "/bin", "XLA_FLAGS": "--xla_cpu_max_isa=AVX", "TF_ENABLE_ONEDNN_OPTS": "0"}
    base = worker_env(Setting("baseline", "defaults"), shell)
    assert "XLA_FLAGS" not in base and "TF_ENABLE_ONEDNN_OPTS" not in base
    assert base["PATH"] == "/bin"
    capped = worker_env(Setting("x", "cap", {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}), shell)
    assert capped["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2"


def test_a_setting_the_worker_did_not_see_is_an_error():
    s = Setting("threads-1", "1 CPU", {"TF_NUM_INTRAOP_THREADS": "1"}, (0,))
    seen = {"cpus": [0, 1], "env": {"TF_NUM_INTRAOP_THREADS": "1"}}
    with pytest.raises(RuntimeError, match=r"'threads-1'.*CPUs \[0, 1\]"):
        portability._check_applied(s, seen)
    seen = {"cpus": [0], "env": {"TF_NUM_INTRAOP_THREADS": "2"}}
    with pytest.raises(RuntimeError, match="TF_NUM_INTRAOP_THREADS='2'"):
        portability._check_applied(s, seen)


def test_unknown_setting_or_size_is_named(tmp_path):
    with pytest.raises(ValueError, match="'threads-7'"):
        portability.run_matrix((64,), tmp_path, only=["threads-7"])
    with pytest.raises(ValueError, match=r"\[128\]"):
        portability.run_matrix((128,), tmp_path)


def test_deviation_per_output_and_bitwise_flag():
    import numpy as np

    a = {"64/x/hs_0": np.zeros((3, 2), np.float32), "64/x/h_avg": np.zeros((1, 2), np.float32)}
    b = {k: v.copy() for k, v in a.items()}
    assert portability._diff(a, b, "64/x/") == {
        "bitwise_equal": True,
        "max_dev": {"hs": 0.0, "h_avg": 0.0},
    }
    b["64/x/hs_0"][2, 1] = 3e-6
    d = portability._diff(a, b, "64/x/")
    assert not d["bitwise_equal"]
    assert d["max_dev"]["hs"] == pytest.approx(3e-6) and d["max_dev"]["h_avg"] == 0.0


@pytest.mark.slow
@pytest.mark.tf
def test_portability_matrix(report):
    from unirep_port.parity import tiers

    tier = tiers.current()
    only = tier.portability_only
    result = portability.run_matrix(
        out_dir=results_dir(),
        only=list(only) if only else None,
        large_only_in=tier.portability_1900_in,
    )
    rows = [{k: v for k, v in r.items() if k != "detail"} for r in result["rows"]]
    s = result["summary"]
    text = (
        f"{s['settings']} settings, each in a fresh process ({result['seconds']:.0f} s); baseline "
        f"run twice bitwise identical: {s['reproducible_run_to_run']}; failed: "
        f"{', '.join(s['failed']) or 'none'}. Full table: parity_tests/results/portability.md."
    )
    report.add(
        "portability",
        {"ok": result["ok"], "summary": text, "numbers": s, "rows": rows},
    )
    assert result["reproducible"] is True, "the baseline setting, run twice, was not bitwise equal"
    failed = [
        f"{r['setting']}/{r['size']}: golden {r['port_vs_golden_ok']}, live {r['live_ok']}, "
        f"alarm {r['alarm_ok']}"
        for r in result["rows"]
        if not r["ok"]
    ]
    assert not failed, "verdicts that changed with the setting:\n" + "\n".join(failed)
