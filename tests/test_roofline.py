"""The one roofline function: every contender does the same work, and the best median counts."""

from __future__ import annotations

import numpy as np
from tolerance import GEMM_STEPS, assert_close

from unirep_port.benchmarks import roofline
from unirep_port.benchmarks.harness import flops_per_token


def _reference(x, w4, w1, steps):
    y = x.astype(np.float64)
    for _ in range(steps):
        y = y + (y @ w4)[:, : x.shape[1]] * (y @ w1)  # (B, H) float64, the same loop
    return y


def test_every_contender_computes_the_step_loop():
    """Both layouts of every installed library return the float64 loop's result, so the FLOPs
    each is credited with are the ones it did."""
    rng = np.random.default_rng(0)
    h, b, steps = 16, 3, 4
    fns = roofline.contenders(h, b, steps)
    assert {"xla/in_out", "xla/out_in", "numpy/in_out", "numpy/out_in"} <= set(fns)
    x0 = rng.standard_normal((b, h), dtype=np.float32)
    w4 = rng.standard_normal((h, 4 * h), dtype=np.float32) * 1e-3
    w1 = rng.standard_normal((h, h), dtype=np.float32) * 1e-3
    want = _reference(x0, w4, w1, steps)  # contenders() draws the same seeded arrays
    for name, fn in fns.items():
        got = np.asarray(fn(), dtype=np.float64)
        assert_close(got, want, GEMM_STEPS, name)


def test_roofline_is_the_best_median_and_its_token_rate(monkeypatch):
    meds = {"xla/out_in": 200.0, "torch/out_in": 210.0, "numpy/in_out": 150.0}
    monkeypatch.setattr(roofline, "median_gflops", lambda *a, **k: meds)
    r = roofline.roofline(1900, 64, windows=3)
    assert (r["best"], r["gflops"]) == ("torch/out_in", 210.0)
    assert r["tokens_per_s"] == 210.0e9 / flops_per_token(1900)
