"""The parity verdict's rules on synthetic outputs: tolerances, the float32-conditioning
attribution (``parity.compare.compare`` and ``assess``) and the report's verdict.

Every expected value here follows from the rule stated in ``compare.compare``'s docstring applied
to drifts and outputs constructed in the test. Only the last test (the float32 ensemble) loads the
real 64 weights.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tolerance import F64_ROWS, MEAN_F32, assert_close

from unirep_port.parity.compare import (
    H_TOL_LONG,
    OUTPUTS,
    Outputs,
    assess,
    compare,
)
from unirep_port.parity.drift import ALPHA_SEQUENCE, tail_factor
from unirep_port.parity.report import Report

L, H = 600, 4  # residues (> 500, so the hidden-state tolerance is H_TOL_LONG), units
T = L + 1  # positions, the start token's included
SPIKE = 300  # where the synthetic port error sits
ILL_AT = 100  # where the synthetic witnesses pass half the tolerance
W = 2e-5  # the witnesses' drift from ILL_AT on (see _drifts)
# The factor assess() applies for the three witnesses of _drifts (the reference and two members).
K = tail_factor(3, ALPHA_SEQUENCE)


def _outputs(hs: np.ndarray) -> Outputs:
    logits = np.zeros((T, 25), np.float32)
    return Outputs([hs], [logits], hs.mean(0)[None], hs[-1][None], np.ones((1, H), np.float32))


def _pair(spike: float):
    """Reference all zeros; the port equal except ``spike`` at one position and unit."""
    ref = np.zeros((T, H), np.float32)
    port = ref.copy()
    port[SPIKE, 0] = spike
    return _outputs(ref), _outputs(port)


def _drifts(witness_h=2e-5, port_h=2e-5, ill_at=ILL_AT, port_at_spike=None, rep=0.0, port_rep=0.0):
    """Drift dicts for :func:`assess`: witnesses at 1e-6 until ``ill_at``, ``witness_h`` from
    there (over half the 2e-5 tolerance); the port ``port_h`` throughout (1e-6 before ``ill_at``),
    or ``port_at_spike`` at SPIKE; every rep at ``rep`` (witnesses) and ``port_rep`` (port).
    """
    w = np.full(T, 1e-6)
    w[ill_at:] = witness_h
    p = np.full(T, 1e-6)
    p[ill_at:] = port_h
    if port_at_spike is not None:
        p[SPIKE] = port_at_spike
    zero = np.zeros(T)
    ref = {"hs": w, "logits": zero, "h_avg": rep, "h_final": rep, "c_final": rep}
    members = {k: np.stack([v, v]) if np.ndim(v) else np.array([v, v]) for k, v in ref.items()}
    port = {"hs": p, "logits": zero, "h_avg": port_rep, "h_final": port_rep, "c_final": port_rep}
    return ref, members, port


def _cond(step_ok=True, **kw):
    return assess(step_ok, L, *_drifts(**kw))


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


def test_assess_finds_where_witnesses_pass_half_the_tolerance():
    cond = _cond()
    assert cond.ill_from == {"hs": ILL_AT, "logits": None}
    assert cond.accurate and cond.place_ok["hs"].all()
    assert not any(cond.ill_reps.values())
    assert cond.summary()["places_beyond_witnesses"]["hs"] == 0


def test_ill_conditioned_place_is_excused_and_counted():
    a, b = _pair(3 * H_TOL_LONG)  # 6e-5 over 2e-5; port as far from float64 as the witnesses
    result = compare(a, b, ["s"], 1900, conditioning={0: _cond()})
    assert result.ok
    assert _hs_stats(result).n_excused == 1  # counted, never hidden


@pytest.mark.parametrize(
    "kw, why",
    [
        (dict(step_ok=False), "a step differs"),
        (dict(ill_at=T), "no independent witness drifted"),
        (dict(ill_at=SPIKE + 1), "the witnesses drift only after the place"),
        (dict(port_at_spike=1.01 * K * W), "the port is far beyond the witnesses at that place"),
        (dict(port_h=1.01 * K * W), "the port is less accurate than the witnesses on average"),
    ],
)
def test_not_excused_unless_every_condition_holds(kw, why):
    a, b = _pair(3 * H_TOL_LONG)  # 6e-5
    result = compare(a, b, ["s"], 1900, conditioning={0: _cond(**kw)})
    assert not result.ok, why
    assert _hs_stats(result).n_fail == 1


def test_drift_factor_boundaries():
    # condition 3, one place: the bound is K x the witnesses' RMS (all three drift W there)
    assert _cond(port_at_spike=K * W * 0.99).place_ok["hs"][SPIKE]
    assert not _cond(port_at_spike=K * W * 1.01).place_ok["hs"][SPIKE]
    # condition 4, the mean over positions: witnesses and port share 1e-6 before ILL_AT, so the
    # port's mean reaches K x the witnesses' mean where its drift from ILL_AT on is port_h_max
    witness_mean = (ILL_AT * 1e-6 + (T - ILL_AT) * W) / T
    port_h_max = (K * witness_mean * T - ILL_AT * 1e-6) / (T - ILL_AT)
    assert _cond(port_h=port_h_max * 0.99).accurate
    assert not _cond(port_h=port_h_max * 1.01).accurate


def test_factor_is_the_student_t_quantile():
    """With n witnesses the factor is the two-sided Student-t quantile at ALPHA_SEQUENCE (values
    from scipy.stats.t; the textbook table gives t_9 = 4.78 at 1e-3 two-sided)."""
    assert tail_factor(9, 1e-3) == pytest.approx(4.781, abs=1e-3)
    assert tail_factor(3, ALPHA_SEQUENCE) == pytest.approx(K)
    assert tail_factor(17, ALPHA_SEQUENCE) < tail_factor(9, ALPHA_SEQUENCE)  # more witnesses


def test_running_maximum_keeps_an_earlier_witness_spike():
    ref, members, port = _drifts()
    ref["hs"][ILL_AT + 5] = 1e-4  # one witness spike, later the witnesses settle at W
    spike_scale = np.sqrt((1e-4**2 + 2 * W**2) / 3)  # their RMS at the spike
    port["hs"][SPIKE] = K * (W + spike_scale) / 2  # beyond K x W at SPIKE, within K x the spike
    assert port["hs"][SPIKE] > K * W
    assert assess(True, L, ref, members, port).place_ok["hs"][SPIKE]


def test_rep_excused_only_when_witnesses_drifted_and_port_did_not_stray():
    ref = np.zeros((T, H), np.float32)
    a = _outputs(ref)
    b = _outputs(ref)
    b.c_final = b.c_final * (1 + 5e-5)  # relative error 5e-5 > 1e-5
    quiet = _cond(rep=1e-6, port_rep=1e-6)  # no witness drifted on the reps
    assert not compare(a, b, ["s"], 1900, conditioning={0: quiet}).ok
    drifted = _cond(rep=2e-5, port_rep=2e-5)  # witnesses and port drifted alike
    assert drifted.ill_reps["c_final"]
    assert compare(a, b, ["s"], 1900, conditioning={0: drifted}).ok
    rep_bug = _cond(rep=2e-5, port_rep=1.01 * K * 2e-5)  # only the port's rep strays
    assert not rep_bug.place_ok["c_final"]
    assert not compare(a, b, ["s"], 1900, conditioning={0: rep_bug}).ok


def test_every_output_is_assessed():
    cond = _cond()
    assert set(cond.place_ok) == set(OUTPUTS)


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
    json_path, md_path, html_path = report.write(tmp_path)
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
    from unirep_port.avgfp import WILD_TYPE
    from unirep_port.parity.compare import H_TOL_SHORT
    from unirep_port.parity.oracle import float32_ensemble, oracle_states

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
    assert_close(ens.h_avg[0], ens.hs[0].mean(axis=0), MEAN_F32, "h_avg")
    np.testing.assert_array_equal(ens.h_final[0], ens.hs[0][-1])


def test_a_separate_verdict_does_not_decide_the_float32_one(tmp_path):
    """The fast mode's certificate carries its own verdict (issue 11): a failing one leaves the
    float32 verdict PASS, and the markdown states both."""
    a, b = _pair(0.0)
    report = Report()
    report.add_parity(compare(a, b, ["s"], 1900))
    report.add("fast mode certificate", {"ok": False, "separate_verdict": True, "summary": "x"})
    assert report.ok
    report.add("other section", {"ok": False, "summary": "y"})
    assert not report.ok
    md = report.markdown()
    assert "Separate verdict, fast mode certificate: **FAIL**" in md


def _single_row_drifts(n: int, single_scale: float, seed: int = 0) -> dict:
    """Synthetic per-sequence drifts: five members that differ by +-10% around one level per
    sequence (as real mean-over-position drifts do), the batched port at that level, and a
    single-row path ``single_scale`` times it."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(1e-7, 1e-6, n)
    d = {f"member{k}": {"hs": level * rng.uniform(0.9, 1.1, n)} for k in range(5)}
    d["jax"] = {"hs": level * rng.uniform(0.9, 1.1, n)}
    d["jax_single_row"] = {"hs": single_scale * level * rng.uniform(0.9, 1.1, n)}
    return d


def test_single_row_subset_keeps_its_power_and_catches_the_old_kernel():
    """realpanel.single_row_verdict on a subset of rows (the gate runs every other protein):
    a faithful path passes, a 1.79x path fails, and a subset too small to tell 1.79x apart
    says so through its power check instead of passing quietly. Sizes: the binomial sign test
    at alpha 1e-3 needs at least 10 untied pairs (2**-10 < 1e-3 < 2**-9)."""
    from unirep_port.parity.realpanel import OLD_KERNEL_RATIO, single_row_rows, single_row_verdict

    rows = single_row_rows(32, 2)
    assert rows == list(range(0, 32, 2))
    ok = single_row_verdict(_single_row_drifts(32, 1.0), rows=rows)
    assert ok["ok"] and ok["power_ok"] and ok["rows"] == 16
    bad = single_row_verdict(_single_row_drifts(32, OLD_KERNEL_RATIO), rows=rows)
    assert not bad["ok"] and bad["power_ok"]
    tiny = single_row_verdict(_single_row_drifts(32, 1.0), rows=single_row_rows(32, 4)[:8])
    assert not tiny["power_ok"]  # 8 rows cannot reach p < 1e-3


def test_single_row_outputs_in_two_threads_are_the_sequential_ones(published):
    """realpanel.single_row_outputs runs its one-row programs two at a time; every row's hidden
    states are bitwise those of running the same rows one after another (real 64 weights, real
    proteins of several lengths), and the rows it was not asked for keep the batched ones."""
    from unirep_port import jax_port
    from unirep_port.parity.realpanel import real_panel, single_row_outputs

    params = published(64)
    seqs = [s for _, s in real_panel(7)]
    batched = jax_port.get_hidden_states(seqs, params, 64)
    fake = Outputs(batched, [], None, None, np.zeros((len(seqs), 64), np.float32))
    rows = [0, 2, 3, 5, 6]
    got = single_row_outputs(params, 64, seqs, fake, rows)
    want = jax_port.get_hidden_states([seqs[i] for i in rows], params, 64, batch_size=1)
    for i, w in zip(rows, want):
        assert np.array_equal(got.hs[i], np.asarray(w))
    for i in (1, 4):
        assert np.array_equal(got.hs[i], np.asarray(batched[i]))


def test_compiled_nudge_is_one_ulp_up_down_or_none_uniformly():
    """oracle_jax._nudge: every element moves by exactly one float32 ulp or not at all, and the
    three outcomes are equally likely: each count of 3e5 draws within 5 binomial sigmas of a third
    (the mod-3 draw's bias, 2**-32, is far below that)."""
    import jax
    import jax.numpy as jnp

    from unirep_port.parity.oracle_jax import _nudge

    n = 300_000
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    x[:10] = 0.0  # zero moves to the smallest subnormal either way
    got = np.asarray(_nudge(jnp.asarray(x), jax.random.key(3)))
    up = got == np.nextafter(x, np.float32(np.inf))
    down = got == np.nextafter(x, np.float32(-np.inf))
    same = got == x
    assert (up | down | same).all() and not (up & down).any()
    sigma = np.sqrt(n * (1 / 3) * (2 / 3))
    for k in (up.sum(), down.sum(), same.sum()):
        assert abs(k - n / 3) < 5 * sigma, (up.sum(), down.sum(), same.sum())


def test_numpy_nudge_is_nextafter_of_the_same_draws():
    """oracle._nudge moves float32 elements on their bit patterns; it must give exactly what
    ``np.nextafter`` toward +-inf gives for the same draws, bit for bit, on every kind of
    value: normal and subnormal of both signs, signed zeros, the largest finite values (they
    step to inf), infinities and NaN. Float64 input keeps the ``nextafter`` formula."""
    from unirep_port.parity.oracle import _nudge

    f = np.finfo(np.float32)
    special = np.array(
        [0.0, -0.0, f.tiny, -f.tiny, f.smallest_subnormal, -f.smallest_subnormal, f.max,
         -f.max, np.inf, -np.inf, np.nan, 1.0, -1.0], np.float32,
    )  # fmt: skip
    x = np.concatenate([np.tile(special, 40), np.random.default_rng(2).standard_normal(5000)])
    x = x.astype(np.float32).reshape(-1, 10)
    for dtype in (np.float32, np.float64):
        xs = x.astype(dtype)
        d = np.random.default_rng(7).integers(-1, 2, xs.shape)
        with np.errstate(over="ignore"):  # the largest finite values step to inf
            up, down = np.nextafter(xs, np.inf), np.nextafter(xs, -np.inf)
        want = np.where(d > 0, up, np.where(d < 0, down, xs))
        got = _nudge(xs, np.random.default_rng(7))
        assert got.dtype == dtype and got.shape == xs.shape
        bits = np.uint32 if dtype == np.float32 else np.uint64
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan)
        assert np.array_equal(got[~nan].view(bits), want[~nan].view(bits)), dtype


def test_compiled_oracle_batch_that_shrinks_keeps_every_rows_numbers(published):
    """``oracle_jax.run_batch(shrink=True)`` (now the default from the 256 model up) moves the
    sequences still running to smaller batches at chunk boundaries (here 4 rows -> 2 -> 1).
    A row's float64 outputs must not depend on that beyond float64 rounding, and its members,
    whose nudges come from other draws once the batch shrinks, must stay faithful float32
    evaluations: as far from float64 as the full batch's members, and within the short-sequence
    tolerance."""
    from unirep_port.parity import oracle_jax
    from unirep_port.parity.compare import H_TOL_SHORT

    params = published(64)
    rng = np.random.default_rng(5)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), n)) for n in (4, 40, 70, 130)]
    kw = {"members": 3, "want_hs32": True}
    full = oracle_jax.run_batch(params, 64, seqs, shrink=False, **kw)
    small = oracle_jax.run_batch(params, 64, seqs, shrink=True, **kw)
    assert_close(small["cfin64"], full["cfin64"], F64_ROWS, "cfin64")
    for row, n in enumerate(small["lengths"]):
        exact = full["hs64"][row, :n]  # (L, H); past a row's length both hold padding
        assert_close(small["hs64"][row, :n], exact, F64_ROWS, f"hs64 row {row}")
        for r in (small, full):
            err = np.abs(r["hs32"][row, :, :n].astype(np.float64) - exact).max()
            assert err <= H_TOL_SHORT, (row, err)
    ratio = np.median(small["drift_hs"]) / np.median(full["drift_hs"])
    assert 0.5 < ratio < 2, ratio  # the same kind of rounding, not a broken member
