"""Run the TF reference and the JAX port on the same panel and collect :class:`Outputs`.

The reference side is the reference's batched verification path (``Babbler.run_batch``, one
``session.run`` per batch; equal to ``get_rep`` per sequence, which ``tests/test_reference*``
checks). The port side uses the port's public functions: ``get_hidden_states`` and ``get_logits``
(per position) and ``get_reps`` (the fast chunked path users run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from parity_tests.compare import (
    C_REL_TOL,
    DRIFT_FACTOR,
    ENSEMBLE_MEMBERS,
    ILL_FRACTION,
    Conditioning,
    Outputs,
    ParityResult,
    compare,
    error_of,
    h_tolerance,
    over_tolerance,
)
from unirep_port.alphabet import pad_batch, validate_sequences


def tf_outputs(babbler, seqs: Sequence[str], batch_size: int = 8) -> Outputs:
    """Reference outputs, batching sequences of similar length together."""
    seqs = validate_sequences(seqs)
    n, hid = len(seqs), babbler.hidden
    order = np.argsort([len(s) for s in seqs], kind="stable")
    hs: list = [None] * n
    logits: list = [None] * n
    reps = np.zeros((3, n, hid), np.float32)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        tokens, lengths = pad_batch([seqs[i] for i in idx])
        r = babbler.run_batch(tokens, lengths)
        for row, i in enumerate(idx):
            hs[i] = r["hs"][row, : lengths[row]]
            logits[i] = r["logits"][row, : lengths[row]]
        reps[0, idx], reps[1, idx], reps[2, idx] = r["h_avg"], r["h_final"], r["c_final"]
    return Outputs(hs, logits, reps[0], reps[1], reps[2])


def jax_outputs(params, seqs: Sequence[str], size: int, batch_size: int = 16) -> Outputs:
    """Port outputs through its public API (``params``: canonical dict or port Params)."""
    import jax_port

    seqs = validate_sequences(seqs)
    hs = [
        np.asarray(x) for x in jax_port.get_hidden_states(seqs, params, size, batch_size=batch_size)
    ]
    logits = [np.asarray(x) for x in jax_port.get_logits(seqs, params, size, batch_size=batch_size)]
    h_avg, h_final, c_final = jax_port.get_reps(seqs, params, size)
    return Outputs(hs, logits, np.asarray(h_avg), np.asarray(h_final), np.asarray(c_final))


def run_parity(
    reference_params: Mapping[str, np.ndarray],
    port_params,
    panel: Sequence[tuple[str, str]],
    size: int,
    babbler=None,
    use_oracle: bool = True,
) -> tuple[ParityResult, Outputs, Outputs]:
    """TF reference on ``reference_params`` vs the port on ``port_params`` over ``panel``.

    Sequences over tolerance get the teacher-forced step check and the reference's own
    float64 drift (``stepwise.py``), which ``compare`` uses to tell float32 conditioning from
    porting error.
    """
    import reference_tf

    ids = [i for i, _ in panel]
    seqs = [s for _, s in panel]
    own = babbler is None
    babbler = babbler or reference_tf.Babbler(reference_params, size=size)
    try:
        ref = tf_outputs(babbler, seqs)
        port = jax_outputs(port_params, seqs, size)
        result = compare(ref, port, ids, size)
        if use_oracle and not result.ok:
            cond = {
                i: conditioning_of(
                    babbler, reference_params, port_params, seqs[i], size, one(port, i)
                )
                for i in over_tolerance(result)
            }
            result = compare(ref, port, ids, size, conditioning=cond)
            result.conditioning = {ids[i]: c.summary() for i, c in cond.items()}
    finally:
        if own:
            babbler.close()
    return result, ref, port


def conditioning_of(
    babbler, reference_params, port_params, seq: str, size: int, port: Outputs
) -> Conditioning:
    """Evidence for telling float32 conditioning from porting error on one sequence.

    ``port`` holds the port's outputs for this one sequence, as the comparison saw them. Gathers
    the teacher-forced step check (``stepwise.py``), the float64 oracle, and
    ``ENSEMBLE_MEMBERS`` independent float32 implementations (``oracle.float32_ensemble``): the
    drift of the witnesses (reference and members) from float64 says where the sequence is
    ill-conditioned and how far a faithful float32 implementation strays there; the port's own
    drift is measured the same way (``compare`` states the rule).
    """
    from parity_tests.oracle import float32_ensemble
    from parity_tests.stepwise import step_errors

    ev = step_errors(babbler, reference_params, port_params, seq, size)
    tol = h_tolerance(len(seq))
    step_ok = bool((ev.h_err <= tol).all() and (ev.c_err <= C_REL_TOL).all())
    scalars = {"max_step_h": float(ev.h_err.max()), "max_step_c_rel": float(ev.c_err.max())}
    if not step_ok:  # a step differs: nothing will be excused, so skip the ensemble
        return Conditioning(False, None, {}, **scalars)
    ens = float32_ensemble(reference_params, seq, size, members=ENSEMBLE_MEMBERS)
    exact = {"hs": ev.exact_hs, **ev.exact_reps}

    def drift(name: str, x) -> np.ndarray:  # distance from float64, as compare measures errors
        return error_of(name, exact[name], np.asarray(x))

    ill_reps = {}
    for name in ("h_avg", "h_final", "c_final"):
        witnesses = [getattr(ev.free, name)[0], *getattr(ens, name)]
        rep_tol = C_REL_TOL if name == "c_final" else tol
        ill_reps[name] = bool(max(drift(name, w)[0] for w in witnesses) > ILL_FRACTION * rep_tol)
    ref_drift = drift("hs", ev.free.hs[0])  # (L+1,)
    member_drift = np.array([drift("hs", h) for h in ens.hs])  # (K, L+1)
    port_drift = drift("hs", port.hs[0])  # (L+1,)
    # Once float32 rounding alone moves a faithful implementation half the tolerance away from
    # the exact result, two faithful float32 implementations can differ by the whole tolerance.
    ill = np.nonzero(np.maximum(ref_drift, member_drift.max(axis=0)) > ILL_FRACTION * tol)[0]
    witness_mean = float(max(ref_drift.mean(), member_drift.mean(axis=1).max()))
    return Conditioning(
        step_ok=True,
        ill_from=int(ill[0]) if len(ill) else None,
        ill_reps=ill_reps,
        accurate=bool(port_drift.mean() <= DRIFT_FACTOR * witness_mean),
        port_mean_drift=float(port_drift.mean()),
        witness_mean_drift=witness_mean,
        max_ref_drift=float(ref_drift.max()),
        max_member_drift=float(member_drift.max()),
        max_port_drift=float(port_drift.max()),
        members=len(ens.hs),
        **scalars,
    )


def one(outputs: Outputs, i: int) -> Outputs:
    """The outputs of sequence ``i`` alone, as an :class:`Outputs` of one."""
    return Outputs(
        [outputs.hs[i]],
        [outputs.logits[i]],
        *(np.asarray(getattr(outputs, k))[i : i + 1] for k in ("h_avg", "h_final", "c_final")),
    )
