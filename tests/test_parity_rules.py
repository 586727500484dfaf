"""The parity verdict's rules on synthetic outputs: tolerances, the float32-conditioning
attribution (``parity_tests.compare``) and the report's verdict (``parity_tests.report``).

No TF and no weights: every expected value here follows from the rule stated in
``compare.compare``'s docstring applied to numbers constructed in the test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity_tests.compare import (
    DRIFT_FACTOR,
    H_TOL_LONG,
    Conditioning,
    Outputs,
    compare,
)
from parity_tests.report import Report

L, H = 600, 4  # residues (> 500, so the hidden-state tolerance is H_TOL_LONG), units
T = L + 1  # positions, the start token's included
SPIKE = 300  # where the synthetic port error sits


def _outputs(hs: np.ndarray) -> Outputs:
    logits = np.zeros((T, 25), np.float32)
    return Outputs([hs], [logits], hs.mean(0)[None], hs[-1][None], np.ones((1, H), np.float32))


def _pair(spike: float):
    """Reference all zeros; the port equal except ``spike`` at one position and unit."""
    ref = np.zeros((T, H), np.float32)
    port = ref.copy()
    port[SPIKE, 0] = spike
    return _outputs(ref), _outputs(port)


def _cond(step_ok=True, ill_from=100, port_mean=3e-6, witness_mean=2e-6) -> Conditioning:
    """Evidence: the port's and the largest witness's mean drift from float64."""
    return Conditioning(
        step_ok=step_ok,
        ill_from=ill_from,
        ill_reps={"h_avg": False, "h_final": False, "c_final": False},
        accurate=port_mean <= DRIFT_FACTOR * witness_mean,  # as engine.conditioning_of decides
        port_mean_drift=port_mean,
        witness_mean_drift=witness_mean,
    )


def _hs_stats(result):
    return next(s for s in result.stats if s.output == "hs")


def test_within_tolerance_passes_without_evidence():
    a, b = _pair(0.9 * H_TOL_LONG)
    assert compare(a, b, ["s"], 1900).ok


def test_over_tolerance_fails_and_names_sequence_and_position():
    a, b = _pair(3 * H_TOL_LONG)
    result = compare(a, b, ["seqA"], 1900)
    assert not result.ok
    hs = _hs_stats(result)
    assert hs.n_fail == 1 and hs.n_excused == 0
    assert f"seqA position {SPIKE}" in hs.first_fail


def test_ill_conditioned_place_is_excused_and_counted():
    a, b = _pair(3 * H_TOL_LONG)  # 6e-5 over 2e-5; port's mean drift 1.5x the witnesses'
    result = compare(a, b, ["s"], 1900, conditioning={0: _cond()})
    assert result.ok
    assert _hs_stats(result).n_excused == 1  # counted, never hidden


@pytest.mark.parametrize(
    "cond, why",
    [
        (dict(step_ok=False), "a step differs"),
        (dict(ill_from=None), "no independent witness drifted"),
        (dict(ill_from=SPIKE + 1), "the witnesses drift only after the place"),
        (dict(port_mean=3.1e-6), "the port is farther from float64 than the witnesses allow"),
    ],
)
def test_not_excused_without_all_three_conditions(cond, why):
    a, b = _pair(3 * H_TOL_LONG)  # 6e-5
    result = compare(a, b, ["s"], 1900, conditioning={0: _cond(**cond)})
    assert not result.ok, why
    assert _hs_stats(result).n_fail == 1


def test_drift_factor_boundary():
    from parity_tests.engine import DRIFT_FACTOR as used  # the factor the evidence is built with

    assert used == DRIFT_FACTOR
    a, b = _pair(3 * H_TOL_LONG)
    w = 2e-6
    over = _cond(port_mean=DRIFT_FACTOR * w * 1.01, witness_mean=w)
    under = _cond(port_mean=DRIFT_FACTOR * w * 0.99, witness_mean=w)
    assert not compare(a, b, ["s"], 1900, conditioning={0: over}).ok
    assert compare(a, b, ["s"], 1900, conditioning={0: under}).ok


def test_rep_excused_only_when_witnesses_drifted_on_that_rep():
    ref = np.zeros((T, H), np.float32)
    a = _outputs(ref)
    b = _outputs(ref)
    b.c_final = b.c_final * (1 + 5e-5)  # relative error 5e-5 > 1e-5
    cond = _cond()
    assert not compare(a, b, ["s"], 1900, conditioning={0: cond}).ok  # no witness drifted
    cond.ill_reps["c_final"] = True
    assert compare(a, b, ["s"], 1900, conditioning={0: cond}).ok
    inaccurate = _cond(port_mean=1e-5)  # the port drifts 5x the witnesses on average
    inaccurate.ill_reps["c_final"] = True
    assert not compare(a, b, ["s"], 1900, conditioning={0: inaccurate}).ok


def test_shape_mismatch_is_a_failure():
    a, _ = _pair(0.0)
    b = _outputs(np.zeros((T - 1, H), np.float32))
    result = compare(a, b, ["short"], 1900)
    assert not result.ok and "short" in _hs_stats(result).first_fail


def test_report_verdict_fails_on_a_failed_test(tmp_path):
    a, b = _pair(0.0)
    report = Report()
    report.add_parity(compare(a, b, ["s"], 1900))
    assert report.ok
    report.add_failed_test("parity_tests/test_x.py::test_y")
    assert not report.ok
    json_path, md_path = report.write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["ok"] is False
    assert data["failed_tests"] == ["parity_tests/test_x.py::test_y"]
    md = md_path.read_text()
    assert "Verdict: **FAIL**" in md and "parity_tests/test_x.py::test_y" in md


# ------------------------------------------------------------- the float32 ensemble ----
def test_float32_ensemble_members_are_faithful_and_distinct(published):
    """Members are float32 implementations of the oracle's math: on a real protein each stays
    within the short-sequence tolerance of the float64 oracle, and the nudges make them round
    differently (else the witnesses would be one sample)."""
    from parity_tests.compare import H_TOL_SHORT
    from parity_tests.oracle import float32_ensemble, oracle_states
    from unirep_port.avgfp import WILD_TYPE

    params = published(64)
    ens = float32_ensemble(params, WILD_TYPE, 64, members=4)
    _, hs = oracle_states(params, WILD_TYPE, 64)  # (L+1, layers, H)
    exact = hs[:, -1]
    assert len(ens.hs) == 4 and ens.hs[0].shape == exact.shape
    assert ens.hs[0].dtype == np.float32
    for k, h in enumerate(ens.hs):
        drift = np.abs(h.astype(np.float64) - exact).max()
        assert drift <= H_TOL_SHORT, f"member {k} is {drift:.3g} from float64"
    assert np.abs(ens.hs[0] - ens.hs[1]).max() > 0, "members did not round differently"
    np.testing.assert_allclose(ens.h_avg[0], ens.hs[0].mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ens.h_final[0], ens.hs[0][-1])
