"""The paired comparison of two sets of top models (``downstream.paired_difference``) and the
per-variant fit it reads (``downstream.fit``), on synthetic data (no weights, seconds).

Expected values: Spearman's rho from ``scipy.stats.spearmanr``; the cross-validated accuracy from
``sklearn.model_selection.cross_val_score`` (what ``downstream`` computed before it kept each
variant's call); McNemar's p-value from the binomial distribution written out here.
"""

from __future__ import annotations

import numpy as np
import pytest

from unirep_port.parity import downstream
from unirep_port.parity.downstream import DownstreamScores, Fitted, paired_difference

ALPHA = 1e-3


def _fitted(pred: np.ndarray, truth: np.ndarray, correct: np.ndarray) -> Fitted:
    from scipy.stats import spearmanr

    rho = float(spearmanr(pred, truth).statistic)
    return Fitted(DownstreamScores(float(correct.mean()), rho), correct, pred, truth)


def _data(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal(n)
    return rng, truth, truth + 0.5 * rng.standard_normal(n)  # a top model with rho ~ 0.9


def test_rank_correlation_rows_are_spearmans_rho_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, (5, 40)).astype(float)  # many ties, as a bootstrap resample has
    b = a + rng.integers(0, 3, (5, 40))
    got = downstream._rank_corr_rows(a, b)
    want = [spearmanr(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_same_predictions_do_not_differ():
    _, truth, pred = _data()
    a = _fitted(pred, truth, np.ones(200, bool))
    out = paired_difference(a, a, ALPHA)
    assert out["ok"] and out["spearman"]["p_value"] == 1.0 and out["accuracy"]["p_value"] == 1.0
    assert out["spearman"]["paired_bootstrap_se"] == 0.0


def test_a_small_perturbation_passes_and_a_degraded_top_model_fails():
    """Predictions moved by noise far below their spread pass; predictions that rank the
    variants much worse (rho ~0.9 -> ~0.3) fail, although their own noise is larger too."""
    rng, truth, pred = _data()
    ok = np.ones(200, bool)
    a = _fitted(pred, truth, ok)
    near = _fitted(pred + 0.01 * rng.standard_normal(200), truth, ok)
    out = paired_difference(a, near, ALPHA)
    assert out["ok"], out
    assert out["spearman"]["paired_bootstrap_se"] > 0
    worse = _fitted(truth + 3.0 * rng.standard_normal(200), truth, ok)
    out = paired_difference(a, worse, ALPHA)
    assert not out["ok"] and out["spearman"]["p_value"] < ALPHA, out


@pytest.mark.parametrize(("a_only", "b_only"), [(0, 12), (6, 6), (1, 0), (3, 9)])
def test_accuracy_is_mcnemars_exact_test(a_only, b_only):
    """Only the discordant variants count; p = 2 P(Binomial(k, 1/2) <= min), at most 1."""
    from math import comb

    n = 100
    ca = np.zeros(n, bool)
    cb = np.zeros(n, bool)
    ca[:a_only] = True  # right only with a
    cb[a_only : a_only + b_only] = True  # right only with b
    ca[60:] = cb[60:] = True  # right with both
    _, truth, pred = _data(n)
    out = paired_difference(_fitted(pred, truth, ca), _fitted(pred, truth, cb), ALPHA)
    k, m = a_only + b_only, min(a_only, b_only)
    want = min(1.0, 2 * sum(comb(k, i) for i in range(m + 1)) / 2**k)
    assert out["accuracy"]["discordant"] == k
    assert out["accuracy"]["p_value"] == pytest.approx(want, rel=1e-12)
    assert out["ok"] == (want >= ALPHA)  # the Spearman side is identical here


def test_fit_keeps_the_cross_validated_accuracy_and_the_ridge_rho():
    """``fit`` keeps each variant's call; its scores are the ones ``cross_val_score`` and a
    ridge fit give directly on the same folds and split."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from unirep_port.avgfp import BRIGHT_THRESHOLD

    rng = np.random.default_rng(2)
    x = rng.standard_normal((150, 12))
    brightness = 2.5 + x[:, 0] + 0.5 * rng.standard_normal(150)
    n_mut = rng.integers(1, 7, 150)
    got = downstream.fit(x, brightness, n_mut)
    bright = (brightness > BRIGHT_THRESHOLD).astype(int)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=downstream.SEED)
    acc = cross_val_score(clf, x, bright, cv=folds, scoring="accuracy").mean()
    assert got.scores.accuracy == pytest.approx(acc, abs=1e-12)
    train, test = n_mut <= downstream.SPLIT_AT, n_mut > downstream.SPLIT_AT
    reg = make_pipeline(StandardScaler(), Ridge(alpha=downstream.RIDGE_ALPHA))
    pred = reg.fit(x[train], brightness[train]).predict(x[test])
    assert got.scores.spearman == pytest.approx(spearmanr(pred, brightness[test]).statistic)
    assert got.correct.shape == (150,) and got.test_predictions.shape == (int(test.sum()),)
