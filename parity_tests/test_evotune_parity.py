"""Evotuning parity, TF1 reference vs JAX, on the real published weights (``tox -e parity``).

Reference: ``reference_tf.train`` (TF 2.21.0 ``tf.compat.v1`` graph mode, ``tf.compat.v1.gradients``
and ``GradientDescentOptimizer`` over the babbler graph's loss, unirep.py L382-388) against
``jax_port.evotune`` (``jax.grad`` through the checkpointed scan). Batches mix lengths so that
padding is present in every batch. Tolerances (both sides float32 on CPU):

* loss: relative error <= 1e-6 (summation order differs; values ~ 1-3 nats);
* gradient of every parameter: ||g_tf - g_jax|| / ||g_tf|| <= 1e-4 (float32 backprop through a
  few hundred recurrent steps; the worst parameter is named on failure);
* parameters after 3 identical SGD steps: max abs difference <= 1e-4;
* reps of the tuned weights written as tf1-npy and run by ``reference_tf.Babbler``: ``h_avg`` and
  ``h_final`` abs <= 1e-5, ``c_final`` <= 1e-5 relative to the sequence's largest ``|c|``.
"""

from __future__ import annotations

import importlib

import jax
import numpy as np
import pytest

from jax_port.params import from_canonical, to_canonical

ev = importlib.import_module("jax_port.evotune")  # the module even if jax_port re-exports evotune()

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


def _grad_errors(g_tf: dict, g_jax: dict) -> dict[str, float]:
    return {
        k: float(np.linalg.norm(g_tf[k] - g_jax[k]) / max(np.linalg.norm(g_tf[k]), 1e-30))
        for k in g_tf
    }


@pytest.mark.parametrize(("size", "seqs"), [(64, BATCH_A), (256, BATCH_A), (1900, SMALL_1900)])
def test_loss_and_gradients(size, seqs, published, report):
    from reference_tf import train

    canon = published(size)
    x, y, m = ev.make_batch(seqs)
    assert (m == 0).any(), "the batch must contain padding"
    loss_tf, g_tf = train.gradients(canon, x, y)
    params = from_canonical(canon, size)
    loss_jax, grads = jax.value_and_grad(ev.loss)(params, x, y, m)
    g_jax = to_canonical(grads)
    rel_loss = abs(float(loss_jax) - loss_tf) / abs(loss_tf)
    errs = _grad_errors(g_tf, g_jax)
    worst = max(errs, key=errs.get)
    report.add(
        f"evotune_gradients_{size}",
        {
            "ok": rel_loss <= 1e-6 and errs[worst] <= 1e-4,
            "loss_tf": loss_tf,
            "loss_jax": float(loss_jax),
            "loss_rel_err": rel_loss,
            "grad_norm_rel_err": errs,
            "worst_param": worst,
        },
    )
    assert rel_loss <= 1e-6, f"loss TF {loss_tf} vs JAX {float(loss_jax)} (rel {rel_loss:.2e})"
    bad = {k: v for k, v in errs.items() if v > 1e-4}
    assert not bad, f"gradient norm-relative error > 1e-4 for: {bad}"


@pytest.mark.parametrize("size", [64, 256])
def test_three_sgd_steps_then_reps_round_trip(size, published, tmp_path, report):
    import reference_tf
    import weights
    from jax_port import get_reps
    from reference_tf import train

    canon = published(size)
    batches = [ev.make_batch(BATCH_A), ev.make_batch(BATCH_B)]
    lr = 0.5  # large enough that the steps move the weights well beyond the tolerance
    tuned_tf, losses_tf = train.sgd_steps(canon, [(x, y) for x, y, _ in batches], lr, 3)
    tuned_params, losses_jax = ev.sgd_steps(from_canonical(canon, size), batches, lr, 3)
    tuned_jax = to_canonical(tuned_params)
    moved = max(float(np.abs(tuned_tf[k] - canon[k]).max()) for k in canon)
    diffs = {k: float(np.abs(tuned_tf[k] - tuned_jax[k]).max()) for k in canon}
    worst = max(diffs, key=diffs.get)
    np.testing.assert_allclose(losses_jax, losses_tf, rtol=1e-5)
    assert moved > 1e-2, f"SGD steps barely moved the weights (max change {moved})"
    bad = {k: v for k, v in diffs.items() if v > 1e-4}
    assert not bad, f"after 3 SGD steps, max abs difference > 1e-4 for: {bad}"

    # Round trip: tuned JAX weights -> tf1-npy folder -> the TF Babbler's reps == JAX reps.
    path = weights.save(tuned_jax, tmp_path / "tuned_npy", "tf1-npy")
    seqs = BATCH_A + BATCH_B
    with reference_tf.Babbler(path, size=size) as bab:
        tf_reps = bab.reps(seqs)
    jax_reps = get_reps(seqs, params=tuned_params)
    # h_avg and h_final absolute; c_final (unbounded cell state) relative to each sequence's
    # largest |c|, the convention of parity_tests/compare.py (C_REL_TOL).
    h_err = max(float(np.abs(a - b).max()) for a, b in zip(tf_reps[:2], jax_reps[:2]))
    c_tf, c_jax = tf_reps[2], jax_reps[2]
    c_err = float((np.abs(c_tf - c_jax).max(1) / np.abs(c_tf).max(1)).max())
    rep_err = max(h_err, c_err)
    report.add(
        f"evotune_sgd_{size}",
        {
            "ok": not bad and rep_err <= 1e-5,
            "lr": lr,
            "steps": 3,
            "max_weight_change": moved,
            "max_abs_param_diff": diffs[worst],
            "worst_param": worst,
            "reps_h_max_abs_diff": h_err,
            "reps_c_final_rel_to_max_c": c_err,
        },
    )
    assert h_err <= 1e-5, f"h_avg/h_final of the tuned weights differ TF vs JAX by {h_err}"
    assert c_err <= 1e-5, f"c_final of the tuned weights differs TF vs JAX by {c_err} (rel)"
