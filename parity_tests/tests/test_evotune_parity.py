"""Evotuning parity, TF1 reference vs JAX, on the real published weights (``tox -e parity``).

Reference: ``reference_tf.train`` (TF 2.21.0 ``tf.compat.v1`` graph mode, ``tf.compat.v1.gradients``
and ``GradientDescentOptimizer`` over the babbler graph's loss, unirep.py L382-388) against
``jax_port.evotuning`` (``jax.grad`` through the checkpointed scan). Batches mix lengths so that
padding is present in every batch.

No tolerance here is a fixed number. Each is derived at run time from float32 rounding measured on
the very batch (``parity_tests/drift.py``): ``MEMBERS`` evaluations of the port in float32 on the
weights with every element moved by one ulp up, down or not at all (seeded) round differently
throughout the recurrence, and their spread ``s`` (sample standard deviation about their mean) is
the scale of what rounding does to the loss, to each parameter's gradient and to the weights after
SGD steps. TF and the port are two more float32 evaluations, so they may differ by
``drift.tail_factor(MEMBERS - 1, ALPHA_SEQUENCE / quantities) * sqrt(2) * s`` plus 16 ulp
(``drift.ULP_FLOOR``). The reps of the tuned weights are judged by ``golden.rounding_check``
against the float64 oracle on those weights. (Neither side can run this backward pass in float64:
TF's graph and the port's scan are float32 throughout, so the spread, not a float64 gradient, is
the yardstick.) A wrong gradient (a missing term, a wrong mask, a transposed matrix) is off by
1e-2 relative or more.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from unirep_port.jax_port import evotuning as ev
from unirep_port.jax_port.params import from_canonical, to_canonical
from unirep_port.parity.drift import ALPHA_SEQUENCE, U32, ULP_FLOOR, pair_bound, tail_factor
from unirep_port.parity.oracle import _nudge

pytestmark = [pytest.mark.slow, pytest.mark.tf]

# Mixed lengths (3..60 residues): every batch holds padding. Real protein fragments.
BATCH_A = [
    "MSKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTL",  # avGFP 1-60
    "MKTAYIAKQRQISFVKSHFSRQ",
    "ACD",
    "MADEEKLPPGWEKRMSRSSGRVYYFNHITNASQWERPSG",
]
BATCH_B = ["MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF", "MGLSDGEWQQVLNVWGK", "WY"]
SMALL_1900 = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MVLSPADKTNVK"]  # 1900: a small batch


MEMBERS = 8  # ulp-nudged float32 evaluations whose spread scales every bound here


def _nudged_canon(canon: dict, k: int) -> dict:
    """The canonical weights with each element one ulp up, down or unchanged (seed ``k``)."""
    rng = np.random.default_rng(k)
    return {name: _nudge(np.asarray(a, np.float32), rng) for name, a in canon.items()}


def _spread(values: list) -> float:
    """Sample standard deviation about the mean of scalars (or of per-member distances)."""
    v = np.asarray(values, np.float64)
    return float(np.sqrt(np.sum((v - v.mean()) ** 2) / (len(v) - 1)))


def _bound(spread: float, value: float, k: float) -> float:
    return float(pair_bound(spread, ULP_FLOOR * U32 * abs(value), k))


def _rel_norm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize(("size", "seqs"), [(64, BATCH_A), (256, BATCH_A), (1900, SMALL_1900)])
def test_loss_and_gradients(size, seqs, published, report):
    from unirep_port.reference_tf import train

    canon = published(size)
    x, y, m = ev.make_batch(seqs)
    assert (m == 0).any(), "the batch must contain padding"
    loss_tf, g_tf = train.gradients(canon, x, y)
    vg = jax.jit(jax.value_and_grad(ev.loss))
    loss_jax, grads = vg(from_canonical(canon, size), x, y, m)
    g_jax = to_canonical(grads)
    members = [vg(from_canonical(_nudged_canon(canon, j), size), x, y, m) for j in range(MEMBERS)]
    m_loss = [float(v) for v, _ in members]
    m_grad = [to_canonical(g) for _, g in members]
    k = tail_factor(MEMBERS - 1, ALPHA_SEQUENCE / (1 + len(canon)))
    loss_bound = _bound(_spread(m_loss), loss_tf, k)
    mean_g = {p: np.mean([g[p] for g in m_grad], axis=0) for p in canon}
    g_bound = {
        p: _bound(_spread([_rel_norm(g[p], mean_g[p]) for g in m_grad]), 1.0, k) for p in canon
    }
    errs = {p: _rel_norm(g_jax[p], g_tf[p]) for p in canon}
    ratios = {p: errs[p] / g_bound[p] for p in canon}
    worst = max(ratios, key=ratios.get)
    loss_err = abs(float(loss_jax) - loss_tf)
    ok = bool(loss_err <= loss_bound and ratios[worst] <= 1)
    report.add(
        f"evotune_gradients_{size}",
        {
            "ok": ok,
            "summary": f"evotune loss and gradients, size {size}, TF vs JAX: "
            f"{'PASS' if ok else 'FAIL'}. Loss |TF - JAX| {loss_err:.2e} (bound "
            f"{loss_bound:.2e}); worst gradient "
            f"{worst}: norm-relative error {errs[worst]:.2e} = {ratios[worst]:.2f} of its bound "
            f"(bounds from {MEMBERS} reordered float32 members, factor {k:.2f}).",
            "rows": [
                {
                    "parameter": p,
                    "norm-rel err": errs[p],
                    "bound": g_bound[p],
                    "err / bound": ratios[p],
                }
                for p in sorted(canon, key=lambda p: -ratios[p])
            ],
            "loss_tf": loss_tf,
            "loss_jax": float(loss_jax),
            "loss_abs_err": loss_err,
            "loss_bound": loss_bound,
            "grad_norm_rel_err": errs,
            "grad_bound": g_bound,
            "worst_param": worst,
            "worst_ratio": ratios[worst],
            "factor": k,
            "members": MEMBERS,
        },
    )
    assert loss_err <= loss_bound, f"loss TF {loss_tf} vs JAX {float(loss_jax)} > {loss_bound:.2e}"
    bad = {p: (errs[p], g_bound[p]) for p in canon if ratios[p] > 1}
    assert not bad, f"gradient norm-relative error over its bound (error, bound): {bad}"


@pytest.mark.parametrize("size", [64, 256])
def test_three_sgd_steps_then_reps_round_trip(size, published, tmp_path, report):
    from unirep_port import reference_tf, weights
    from unirep_port.jax_port import get_reps
    from unirep_port.parity.compare import Outputs
    from unirep_port.parity.golden import rounding_check
    from unirep_port.reference_tf import train

    canon = published(size)
    batches = [ev.make_batch(BATCH_A), ev.make_batch(BATCH_B)]
    lr = 0.5  # large enough that the steps move the weights far beyond rounding
    tuned_tf, losses_tf = train.sgd_steps(canon, [(x, y) for x, y, _ in batches], lr, 3)
    tuned_params, losses_jax = ev.sgd_steps(from_canonical(canon, size), batches, lr, 3)
    tuned_jax = to_canonical(tuned_params)
    members = [
        ev.sgd_steps(from_canonical(_nudged_canon(canon, j), size), batches, lr, 3)
        for j in range(MEMBERS)
    ]
    m_tuned = [to_canonical(p) for p, _ in members]
    m_losses = np.array([np.asarray(v, np.float64) for _, v in members])  # (MEMBERS, 3)
    k = tail_factor(MEMBERS - 1, ALPHA_SEQUENCE / (len(canon) + m_losses.shape[1]))
    moved = max(float(np.abs(tuned_tf[p] - canon[p]).max()) for p in canon)
    mean_t = {p: np.mean([t[p] for t in m_tuned], axis=0) for p in canon}
    bounds = {
        p: _bound(
            _spread([float(np.abs(t[p] - mean_t[p]).max()) for t in m_tuned]),
            float(np.abs(mean_t[p]).max()),
            k,
        )
        for p in canon
    }
    diffs = {p: float(np.abs(tuned_tf[p] - tuned_jax[p]).max()) for p in canon}
    worst = max(canon, key=lambda p: diffs[p] / bounds[p])
    loss_bounds = [
        _bound(_spread(m_losses[:, i]), losses_tf[i], k) for i in range(m_losses.shape[1])
    ]
    loss_errs = [abs(float(a) - float(b)) for a, b in zip(losses_jax, losses_tf)]
    assert all(e <= b for e, b in zip(loss_errs, loss_bounds)), (loss_errs, loss_bounds)
    assert moved > 1e-2, f"SGD steps barely moved the weights (max change {moved})"
    bad = {p: (diffs[p], bounds[p]) for p in canon if diffs[p] > bounds[p]}
    assert not bad, f"after 3 SGD steps, max abs difference over its bound (diff, bound): {bad}"

    # Round trip: tuned JAX weights -> tf1-npy folder -> the TF Babbler's reps == JAX reps, up to
    # the rounding golden.rounding_check derives on the tuned weights.
    path = weights.save(tuned_jax, tmp_path / "tuned_npy", "tf1-npy")
    seqs = BATCH_A + BATCH_B
    with reference_tf.Babbler(path, size=size) as bab:
        tf_reps = bab.reps(seqs)
    jax_reps = get_reps(seqs, params=tuned_params)
    as_outputs = [Outputs([], [], *(np.asarray(r) for r in reps)) for reps in (tf_reps, jax_reps)]
    panel = [(f"seq{i}", s) for i, s in enumerate(seqs)]
    reps = rounding_check(*as_outputs, tuned_jax, panel, size, ("h_avg", "h_final", "c_final"))
    ok = bool(not bad and reps.ok)
    report.add(
        f"evotune_sgd_{size}",
        {
            "ok": ok,
            "summary": f"3 SGD steps (lr {lr}) in TF and JAX, size {size}, then the tuned "
            f"weights' reps through the TF reference: {'PASS' if ok else 'FAIL'}. Weights moved "
            f"up to {moved:.3g}; worst parameter {worst}: max |TF - JAX| {diffs[worst]:.2e} "
            f"(bound {bounds[worst]:.2e}); reps round trip "
            f"{'PASS' if reps.ok else 'FAIL'}.",
            "rows": [
                {"what": f"loss, step {i + 1}", "|TF - JAX|": e, "bound": b}
                for i, (e, b) in enumerate(zip(loss_errs, loss_bounds))
            ]
            + [
                {
                    "what": f"reps {o} (tuned weights)",
                    "|TF - JAX|": reps.max_abs.get(o),
                    "bound": None
                    if not reps.max_ratio.get(o)
                    else reps.max_abs[o] / reps.max_ratio[o],
                }
                for o in reps.max_ratio
            ],
            "lr": lr,
            "steps": 3,
            "max_weight_change": moved,
            "max_abs_param_diff": diffs[worst],
            "bound_of_worst": bounds[worst],
            "worst_param": worst,
            "loss_errors": loss_errs,
            "loss_bounds": loss_bounds,
            "reps": reps.summary(),
        },
    )
    assert reps.ok, "\n".join(reps.failures())
