"""Downstream parity: the same top models trained on reference reps and on port reps.

On a fixed, seeded subset of the avGFP landscape (``data/avgfp``), 1900-model ``h_avg``:

* bright/dark classification (the seed paper's Figure 5): standardised features, logistic
  regression, stratified 5-fold cross-validation, mean accuracy;
* FLIP-style regression: ridge on log10 brightness, trained on variants with at most
  ``SPLIT_AT`` mutations and tested on the rest (low-order -> high-order extrapolation, as FLIP's
  GFP splits do), scored by Spearman's rho on the test set.

Both top models get identical folds, seeds and hyper-parameters; only the reps differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_VARIANTS = 2000
SEED = 0
SPLIT_AT = 3  # mutations: train on <= 3, test on >= 4
RIDGE_ALPHA = 1.0
AGREE = 0.005
N_BOOT = 2000  # resamples of the paired bootstrap: the SE's own relative error ~ 1/sqrt(2 N_BOOT)


@dataclass
class DownstreamScores:
    accuracy: float  # bright/dark, 5-fold CV mean
    spearman: float  # ridge on the high-order test split


def score_diff(a: float, b: float) -> float:
    """``|a - b|`` of two scores, rounded to 12 decimals. Accuracies are counts of whole variants
    over ``n`` (3/600 apart is exactly 0.005); the rounding drops only the float64 representation
    error of that difference (0.0050000000000000044), so ``<= AGREE`` means what it says."""
    return round(abs(a - b), 12)


def variants(n: int | None = None):
    """``n`` seeded avGFP variants (default :data:`N_VARIANTS`; the tier may ask for fewer)."""
    from unirep_port.avgfp import load_variants

    return load_variants(n or N_VARIANTS, seed=SEED)


def score(reps: np.ndarray, brightness: np.ndarray, n_mut: np.ndarray) -> DownstreamScores:
    """Both top models' scores on ``reps`` (:func:`fit` without the per-variant detail)."""
    return fit(reps, brightness, n_mut).scores


@dataclass
class Fitted:
    """Both top models on one set of reps, with what each variant contributed to the scores."""

    scores: DownstreamScores
    correct: np.ndarray  # (n,) bool: bright/dark called right in the fold that tested it
    test_predictions: np.ndarray  # (n_test,) ridge predictions on the high-order test split
    test_truth: np.ndarray  # (n_test,) their brightness


def fit(reps: np.ndarray, brightness: np.ndarray, n_mut: np.ndarray) -> Fitted:
    """Both top models on ``reps``, with one BLAS and one OpenMP thread.

    A fit is many small products (a 320 x 1900 matrix by a vector per lbfgs iteration). With
    OpenBLAS's threads and sklearn's OpenMP loss beside them on a small machine the threads
    contend for the cores and each product waits on the others; with one thread of each a score
    is several times faster, the same scores to the last digit (measured side by side: commit
    ba7e7d7's message, ``docs/speed.md``). The models, folds and solver are the same either way;
    only the order of summation inside a product may differ.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit(reps, brightness, n_mut)


def _fit(reps: np.ndarray, brightness: np.ndarray, n_mut: np.ndarray) -> Fitted:
    from scipy.stats import spearmanr
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from unirep_port.avgfp import BRIGHT_THRESHOLD

    x = reps.astype(np.float64)
    bright = (brightness > BRIGHT_THRESHOLD).astype(int)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    correct = np.zeros(len(x), bool)
    fold_acc = []
    for tr, te in folds.split(x, bright):  # what cross_val_score does, keeping each call
        correct[te] = clone(clf).fit(x[tr], bright[tr]).predict(x[te]) == bright[te]
        fold_acc.append(correct[te].mean())
    acc = float(np.mean(fold_acc))  # the mean of the folds' accuracies, as before
    train, test = n_mut <= SPLIT_AT, n_mut > SPLIT_AT
    reg = make_pipeline(StandardScaler(), Ridge(alpha=RIDGE_ALPHA))
    reg.fit(x[train], brightness[train])
    pred = reg.predict(x[test])
    rho = float(spearmanr(pred, brightness[test]).statistic)
    return Fitted(DownstreamScores(acc, rho), correct, pred, brightness[test])


def _rank_corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``a`` and ``b`` (B, n): Pearson's r of their ranks
    (ties averaged, as ``scipy.stats.spearmanr``)."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)  # (B, n) each
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    return (ra * rb).sum(axis=1) / np.where(den > 0, den, np.inf)  # (B,)


def paired_difference(a: Fitted, b: Fitted, alpha: float, n_boot: int = N_BOOT) -> dict:
    """Do the top models on reps ``b`` score measurably differently from those on reps ``a``?

    Both fits saw the same variants, folds and splits, so the differences are paired, and how
    large a difference the variants can show by chance is measured on these very variants:

    * **accuracy**: only the discordant variants (called right by one top model and wrong by the
      other) can move it; under "no difference" each is one way or the other with probability
      1/2, so the count one way is Binomial(discordant, 1/2) (McNemar's exact test, two-sided);
    * **Spearman**: the test variants are resampled with replacement ``n_boot`` times (seed
      :data:`SEED`), both rhos taken on each resample; the standard deviation of their
      difference is its standard error, and ``|difference| / SE`` is compared with the normal
      distribution (two-sided).

    A score differs when its p-value is below ``alpha``. Nothing here is a number from any
    machine: the scale is the statistic's own sampling noise on this data. What it does not
    claim: that the difference is zero (a small real shift stays unseen on few variants; the
    standard errors in the result say how small).
    """
    from scipy import stats

    d_acc = b.scores.accuracy - a.scores.accuracy
    b_only = int(np.count_nonzero(b.correct & ~a.correct))
    a_only = int(np.count_nonzero(a.correct & ~b.correct))
    n_dis = a_only + b_only
    p_acc = min(1.0, 2 * float(stats.binom.cdf(min(a_only, b_only), n_dis, 0.5))) if n_dis else 1.0
    d_rho = b.scores.spearman - a.scores.spearman
    n = len(a.test_truth)
    idx = np.random.default_rng(SEED).integers(0, n, (n_boot, n))  # (B, n) resampled variants
    y = a.test_truth[idx]
    boot = _rank_corr_rows(b.test_predictions[idx], y) - _rank_corr_rows(a.test_predictions[idx], y)
    se = float(boot.std(ddof=1))
    if se > 0:
        p_rho = float(2 * stats.norm.sf(abs(d_rho) / se))
    else:  # identical predictions on every resample
        p_rho = 1.0 if d_rho == 0 else 0.0
    return {
        "ok": bool(p_acc >= alpha and p_rho >= alpha),
        "alpha": alpha,
        "accuracy": {
            "diff": d_acc,
            "discordant": n_dis,
            "right_only_with_a": a_only,
            "right_only_with_b": b_only,
            "p_value": p_acc,
            "test": "McNemar exact, two-sided",
        },
        "spearman": {
            "diff": d_rho,
            "paired_bootstrap_se": se,
            "resolution": float(stats.norm.isf(alpha / 2) * se),
            "p_value": p_rho,
            "n_boot": n_boot,
            "test": "paired bootstrap over test variants, normal, two-sided",
        },
    }


def downstream_parity(tf_reps: np.ndarray, jax_reps: np.ndarray, vs) -> dict:
    """Scores on both sets of reps, their differences, and the verdict (``ok``)."""
    brightness = np.array([v.brightness for v in vs])
    n_mut = np.array([0 if v.name == "WT" else v.name.count(":") + 1 for v in vs])
    a, b = score(tf_reps, brightness, n_mut), score(jax_reps, brightness, n_mut)
    d_acc, d_rho = score_diff(a.accuracy, b.accuracy), score_diff(a.spearman, b.spearman)
    ok = d_acc <= AGREE and d_rho <= AGREE
    return {
        "ok": ok,
        "summary": (
            f"{len(vs)} avGFP variants (seed {SEED}), 1900 h_avg. Bright/dark 5-fold CV accuracy: "
            f"TF {a.accuracy:.4f}, JAX {b.accuracy:.4f} (|diff| {d_acc:.4f}); ridge Spearman rho "
            f"(train <= {SPLIT_AT} mutations, test > {SPLIT_AT}): TF {a.spearman:.4f}, "
            f"JAX {b.spearman:.4f} (|diff| {d_rho:.4f}); must agree within {AGREE}."
        ),
        "tf": asdict(a),
        "jax": asdict(b),
        "abs_diff": {"accuracy": d_acc, "spearman": d_rho},
        "max_abs_rep_diff": float(np.abs(tf_reps - jax_reps).max()),
        "n_variants": len(vs),
        "n_train": int((n_mut <= SPLIT_AT).sum()),
        "n_test": int((n_mut > SPLIT_AT).sum()),
    }
