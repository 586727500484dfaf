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
  :func:`bulk_test` asks the same of one judgement's places, where places are not independent
  (the positions of one sequence share their history): it compares whole-judgement aggregates,
  the candidate's against each witness's, which are exchangeable whatever the correlation.

This module is the porting kit's (``unirep_port.porting``); the UniRep suite imports it as
``unirep_port.parity.drift``.
"""

from __future__ import annotations

import math

import numpy as np

U32 = 2.0**-24  # unit roundoff of float32
# False-alarm rates. A run of the UniRep suite's nightly tier takes a few hundred statistical
# verdicts, and whether any of them fails a faithful port by chance is bounded by the sum of their
# rates (``unirep_port.parity.budget``; a nightly can live with 1e-3 in all).
# The rates below are set so that sum fits; what each costs in bound width or power is stated
# beside it, and each cost is paid where the gap to a real bug is orders of magnitude wide.
#
# Per-sequence (per-judgement) false-alarm probability of the attribution bounds
# (compare.assess), of the teacher-forced step check (stepwise.step_errors, Bonferroni over
# positions) and of the judge's per-place bound (Bonferroni over places). 5e-7 rather than 1e-4:
# the Student-t factor grows from 6.6 to 12.6 with 9 witnesses (``tail_factor(9, alpha)``), from
# 8.8 to 12.8 for the step check of a 589-mer (16 members, alpha / 590), from 14.3 to 26.1 for
# its logits (9 witnesses, alpha / 590) and from 16.5 to 30.0 for a 2,000-mer's logits: at most
# 1.9x wider. The scale these factors multiply is the witnesses' spread: 1e-8 to 1e-5 for hidden
# states (the top only on the ill-conditioned stretches of 2,000-mers), so their widest bound
# stays at 3e-4 or below, under the 1e-3 to 1e-1 by which a porting bug moves them. The logits'
# spread is larger (1,900-term sums the witnesses add one product at a time), and what passes
# their bound on a long 1900 sequence grows with the factor, from about 1e-3 to about 1.8e-3
# (``docs/correctness.md``). The planted bugs of ``parity.planted_bugs`` and
# ``parity.planted_tf`` and the planted logit bugs must still fail; a port a little less
# accurate everywhere is the bulk tests' job, never one sequence's. (More witnesses would buy
# the width back: 16 members instead of 8 give a 589-mer's logits 12.1 at 5e-7.)
ALPHA_SEQUENCE = 5e-7
# The golden drift alarm, per place over the whole golden panel (Bonferroni over places). 1e-5
# rather than 1e-4: 16 members' factor at 1e-5 / places is 1.17x to 1.18x the one at 1e-4 /
# places (1e3 to 1e6 places), on a bound that catches changes of 1e-3 and more.
ALPHA_ALARM = 1e-5
# Bulk accuracy: level of the one-sided tests over a panel (:func:`sign_test`, the judge's
# :func:`bulk_test`). 5e-6 rather than 1e-3: the sign test then fails a port worse than its
# witness on 60 of 80 sequences (75%) or 245 of 400 (61%), against 55 (69%) and 232 (58%) at
# 1e-3 (whether a port 1.79x less accurate, the old single-row kernel, still fails at a panel's
# size is the power check ``parity.realpanel`` runs on every panel in every run). Its cost is
# panels: below 18 sequences no count reaches 5e-6 (``0.5 ** 17 = 7.6e-6``), so a
# small panel keeps a higher level of its own (the suite's gate: ``parity.tiers``,
# ``Tier.alpha_bulk``) or tells nothing. :func:`bulk_test` has no such floor, but its one-sided
# Student-t quantile with 9 witnesses (8 degrees of freedom) grows from 4.5 to 9.8: a candidate
# must sit about 2.2x further above ``BULK_FACTOR``, in units of the witnesses' spread, to fail
# (``tests/test_drift_bulk.py`` measures that power).
ALPHA_BULK = 5e-6
# Elementwise floor: rounding of the last few elementwise operations and of the transcendental
# functions (tanh, exp) that no dot-product spread shows. Libraries document their float32 tanh /
# exp / logistic to within a few ulp; 16 ulp of the value leaves room for the crudest of them.
ULP_FLOOR = 16
# Bulk accuracy of a judged port: the candidate fails when its typical drift is significantly
# more than this factor times the witnesses'. A factor of 2 is one bit of the float32 mantissa
# lost everywhere. Reordering the same float32 operations (another blocking, a fused matmul,
# a re-associated sum) changes which roundings happen, not how many or how large: the typical
# drift stays the same order (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
# sections 3.1 and 4.2: every summation order of n terms has the same first-order bound, and
# rounding errors add like a random walk), while the nudged witnesses carry one more rounding
# per weight than any unnudged evaluation. A port that is one bit worse everywhere computes
# other math (an epsilon, an approximation, a lower-precision step), which is what the test is for.
BULK_FACTOR = 2.0

__all__ = [
    "ALPHA_ALARM",
    "ALPHA_BULK",
    "ALPHA_SEQUENCE",
    "BULK_FACTOR",
    "U32",
    "ULP_FLOOR",
    "bound",
    "bulk_test",
    "distribution",
    "floor_of",
    "pair_bound",
    "rms",
    "sign_test",
    "tail_factor",
]


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


def bound(witness_drifts: np.ndarray, floor: np.ndarray, k: float) -> np.ndarray:
    """The bound of every drift check: ``k * rms(witness drifts) + floor``, per place.

    ``witness_drifts`` is ``(n_witnesses, ...)``; ``floor`` broadcasts against one witness's
    drifts (usually :func:`floor_of` the values there); ``k`` a :func:`tail_factor`.
    """
    return k * rms(witness_drifts) + np.asarray(floor, np.float64)


def pair_bound(scale: np.ndarray, floor: np.ndarray, k: float) -> np.ndarray:
    """The bound on the difference of two float32 evaluations: ``k * sqrt(2) * scale + floor``.

    ``scale`` is the witnesses' rms drift (each evaluation's own); two independent evaluations
    differ by ``sqrt(2)`` times that in rms, and :func:`tail_factor` ``k`` widens it as in
    :func:`bound`. The goldens' drift alarm and the evotune gradients use it.
    """
    return k * np.sqrt(2) * np.asarray(scale, np.float64) + np.asarray(floor, np.float64)


def bulk_test(
    candidate: np.ndarray,
    witnesses: np.ndarray,
    scale: np.ndarray,
    alpha: float = ALPHA_BULK,
    factor: float = BULK_FACTOR,
) -> dict:
    """Is the candidate farther from float64 than ``factor`` times the witnesses, over all places?

    ``candidate`` (P,) and ``witnesses`` (W, P) are drifts from float64 at the same P places;
    ``scale`` (P,) is one float32 ulp of the value there (it keeps an exact zero drift finite).
    Each evaluation's aggregate is ``L = mean_p log(drift_p + scale_p)``, the log of its
    geometric-mean drift. The places of one input are correlated, so no per-place count is a
    binomial; but a faithful candidate's ``L`` is one more draw of what the witnesses' ``L`` are
    (each an average over the same P places, nearly normal). With ``W`` witnesses, mean ``m`` and
    standard deviation ``s``, ``(L_c - m) / (s * sqrt(1 + 1/W))`` follows Student's t with
    ``W - 1`` degrees of freedom (a prediction interval); the candidate fails when
    ``L_c - log(factor)`` is beyond its one-sided ``1 - alpha`` quantile.

    Returns ``{ok, ratio, p_value, t, n_witnesses, n_places, alpha, factor}``; ``ratio`` is the
    candidate's geometric-mean drift over the witnesses' (1 for a typical faithful port).
    """
    from scipy import stats

    cand = np.asarray(candidate, np.float64).ravel()
    wit = np.asarray(witnesses, np.float64).reshape(len(witnesses), -1)
    scale = np.asarray(scale, np.float64).ravel()
    if wit.shape[1] != cand.size or scale.size != cand.size:
        raise ValueError(f"bulk_test: {cand.size} places, witnesses {wit.shape}, {scale.size}")
    out = {"n_witnesses": len(wit), "n_places": int(cand.size), "alpha": alpha, "factor": factor}
    if len(wit) < 3 or cand.size == 0:
        return {
            **out,
            "ok": True,
            "ratio": math.nan,
            "p_value": 1.0,
            "t": math.nan,
            "note": "too few witnesses or places for a bulk test",
        }
    lc = float(np.mean(np.log(cand + scale)))
    lw = np.mean(np.log(wit + scale), axis=1)  # (W,)
    m, s = float(lw.mean()), float(lw.std(ddof=1))
    ratio = math.exp(lc - m)
    if s == 0.0:  # witnesses identical: a candidate beyond factor x them is as far as it gets
        t = math.inf if lc - m > math.log(factor) else -math.inf
    else:
        t = (lc - m - math.log(factor)) / (s * math.sqrt(1 + 1 / len(wit)))
    p = float(stats.t.sf(t, len(wit) - 1))
    return {**out, "ok": p >= alpha, "ratio": ratio, "p_value": p, "t": t}


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
