"""Statistics of float32 drift: how far a faithful float32 implementation may stray, derived.

Every bound the suite sets on "how close to the exact result is close enough" comes from here, and
none is a number read off one machine. Each is measured at run time against the float64 oracle on
the very inputs judged, and widened by a stated statistical factor:

* **Witnesses.** Independent float32 evaluations of the same math (the TF reference, and the
  members of ``oracle.float32_ensemble`` / ``oracle.step_members``, written apart from the port)
  each stray from float64 by their own rounding. Their spread at a place is the scale ``s`` of
  what float32 rounding does there, on this input, whatever the CPU, kernel or blocking.
* **Tail factor.** A faithful implementation is one more draw from the same distribution. If the
  drifts were ``s * |Z|`` with ``Z`` standard normal, ``drift / rms(witness drifts)`` of a new draw
  would follow Student's ``|t|`` with ``n`` degrees of freedom (``n`` witnesses), so the bound
  ``tail_factor(n, alpha) * rms`` is exceeded by a faithful implementation with probability
  ``alpha``. The drifts the suite measures (a maximum over hidden units, a mean over positions) are
  lighter-tailed than ``|Z|``, so the real false-alarm rate is lower still. A porting bug moves
  outputs by 1e-3 to 1e-1, a factor 1e3 or more above ``s`` (1e-8 to 1e-5), far beyond any factor.
* **Bulk accuracy.** One sequence can tell a gross error, never a port that is "a bit less
  accurate everywhere" (the old single-row kernel: 1.8x the witnesses). That needs many sequences:
  :func:`sign_test` asks whether the port is farther from float64 than a witness on significantly
  more than half of a panel's sequences (one-sided binomial test at level ``alpha``).
"""

from __future__ import annotations

import math

import numpy as np

U32 = 2.0**-24  # unit roundoff of float32
# Per-sequence false-alarm probability of the attribution bounds (compare.assess) and of the
# teacher-forced step check per position (stepwise.step_errors, Bonferroni over positions).
ALPHA_SEQUENCE = 1e-4
# The golden drift alarm, per place over the whole golden panel (Bonferroni over places).
ALPHA_ALARM = 1e-4
# Bulk accuracy: level of the one-sided sign test over a panel.
ALPHA_BULK = 1e-3
# Elementwise floor: rounding of the last few elementwise operations and of the transcendental
# functions (tanh, exp) that no dot-product spread shows. Libraries document their float32 tanh /
# exp / logistic to within a few ulp; 16 ulp of the value leaves room for the crudest of them.
ULP_FLOOR = 16


def tail_factor(n_witnesses: int, alpha: float) -> float:
    """The two-sided Student-t quantile: ``P(|t_n| > k) = alpha`` for ``n`` witnesses."""
    from scipy import stats

    if n_witnesses < 1:
        raise ValueError(f"need at least one witness, got {n_witnesses}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(stats.t.isf(alpha / 2, n_witnesses))


def rms(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Root mean square over ``axis`` (the witnesses' axis), in float64."""
    x = np.asarray(x, np.float64)
    return np.sqrt(np.mean(x * x, axis=axis))


def floor_of(values: np.ndarray) -> np.ndarray:
    """``ULP_FLOOR`` float32 units of ``|values|`` (the tiniest normal where that is zero)."""
    v = np.abs(np.asarray(values, np.float64))
    return np.maximum(ULP_FLOOR * U32 * v, np.finfo(np.float32).tiny)


def sign_test(port: np.ndarray, witness: np.ndarray, alpha: float = ALPHA_BULK) -> dict:
    """Is ``port`` farther from float64 than ``witness`` on significantly more than half the pairs?

    ``port`` and ``witness`` are per-sequence drifts (one number each) over the same panel. Ties
    are dropped. Under "equally accurate" each untied pair has the port worse with probability
    1/2, so the count of "port worse" is Binomial(n, 1/2); the port fails when that count is so
    high its one-sided p-value is below ``alpha``.
    """
    from scipy import stats

    port, witness = np.asarray(port, np.float64), np.asarray(witness, np.float64)
    if port.shape != witness.shape:
        raise ValueError(f"sign_test: shapes differ: {port.shape} vs {witness.shape}")
    worse = int(np.count_nonzero(port > witness))
    better = int(np.count_nonzero(port < witness))
    n = worse + better
    p = float(stats.binom.sf(worse - 1, n, 0.5)) if n else 1.0
    return {
        "n": n,
        "port_worse": worse,
        "port_better": better,
        "p_value": p,
        "alpha": alpha,
        "ok": p >= alpha,
        "median_ratio": float(np.median(port / np.maximum(witness, 1e-300))) if n else math.nan,
    }


def distribution(values: np.ndarray) -> dict:
    """Median, 99th percentile and maximum of per-sequence drifts."""
    v = np.asarray(values, np.float64)
    return {
        "median": float(np.median(v)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }
