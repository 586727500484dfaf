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
    """Both top models' scores on ``reps``, with one BLAS and one OpenMP thread.

    A fit is many small products (a 320 x 1900 matrix by a vector per lbfgs iteration). With
    OpenBLAS's threads and sklearn's OpenMP loss beside them on a small machine the threads
    contend for the cores and each product waits on the others; with one thread of each a score
    is several times faster, the same scores to the last digit (measured side by side: commit
    ba7e7d7's message, ``docs/speed.md``). The models, folds and solver are the same either way;
    only the order of summation inside a product may differ.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit_and_score(reps, brightness, n_mut)


def _fit_and_score(reps: np.ndarray, brightness: np.ndarray, n_mut: np.ndarray) -> DownstreamScores:
    from scipy.stats import spearmanr
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from unirep_port.avgfp import BRIGHT_THRESHOLD

    x = reps.astype(np.float64)
    bright = (brightness > BRIGHT_THRESHOLD).astype(int)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    acc = float(cross_val_score(clf, x, bright, cv=folds, scoring="accuracy").mean())
    train, test = n_mut <= SPLIT_AT, n_mut > SPLIT_AT
    reg = make_pipeline(StandardScaler(), Ridge(alpha=RIDGE_ALPHA))
    reg.fit(x[train], brightness[train])
    rho = float(spearmanr(reg.predict(x[test]), brightness[test]).statistic)
    return DownstreamScores(acc, rho)


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
