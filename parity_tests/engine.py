"""Run the TF reference and the JAX port on the same panel and collect :class:`Outputs`.

The reference side is the reference's batched verification path (``Babbler.run_batch``, one
``session.run`` per batch; equal to ``get_rep`` per sequence, which ``tests/test_reference*``
checks). The port side uses the port's public functions: ``get_hidden_states`` and ``get_logits``
(per position) and ``get_reps`` (the fast chunked path users run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from unirep_port.alphabet import pad_batch, validate_sequences
from unirep_port.batches import by_length
from unirep_port.parity.compare import (
    ENSEMBLE_MEMBERS,
    OUTPUTS,
    Conditioning,
    Outputs,
    ParityResult,
    assess,
    compare,
    error_of,
    over_tolerance,
    tolerance,
    witness_logits,
)
from unirep_port.parity.oracle_jax import PREFETCH_GROUP
from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY


def tf_outputs(babbler, seqs: Sequence[str], batch_size: int = 8) -> Outputs:
    """Reference outputs, batching sequences of similar length together.

    Computed once per run for a given live graph and sequences (``parity.shared``): the arrays
    are read-only, shared with every other check that asks for the same.
    """
    from unirep_port.parity.shared import STORE, graph_token, seqs_digest

    seqs = validate_sequences(seqs)
    key = (babbler.size, graph_token(babbler), seqs_digest(seqs), len(seqs), batch_size)
    return STORE.get("TF reference outputs", key, lambda: _tf_outputs(babbler, seqs, batch_size))


def frozen(o: Outputs) -> Outputs:
    """``o`` with every array made read-only (values shared between checks must not change)."""
    for a in (*o.hs, *o.logits, o.h_avg, o.h_final, o.c_final):
        a.flags.writeable = False
    return o


def _tf_outputs(babbler, seqs: list[str], batch_size: int) -> Outputs:
    n, hid = len(seqs), babbler.hidden
    hs: list = [None] * n
    logits: list = [None] * n
    reps = np.zeros((3, n, hid), np.float32)
    for idx in by_length(seqs, batch_size):
        tokens, lengths = pad_batch([seqs[i] for i in idx])
        r = babbler.run_batch(tokens, lengths)
        for row, i in enumerate(idx):
            hs[i] = r["hs"][row, : lengths[row]]
            logits[i] = r["logits"][row, : lengths[row]]
        reps[0, idx], reps[1, idx], reps[2, idx] = r["h_avg"], r["h_final"], r["c_final"]
    return frozen(Outputs(hs, logits, reps[0], reps[1], reps[2]))


def jax_outputs(params, seqs: Sequence[str], size: int, batch_size: int = 16) -> Outputs:
    """Port outputs through its public API (``params``: canonical dict, port Params, or a
    prepared ``jax_port.Model``, e.g. a planted bug's).

    For a canonical dict the result is computed once per run per (weights' content, sequences)
    and shared read-only (``parity.shared``); a prepared model (a variant) is always run.
    """
    seqs = validate_sequences(seqs)
    if not isinstance(params, Mapping):
        return _jax_outputs(params, seqs, size, batch_size)
    from unirep_port.parity.oracle import params_digest
    from unirep_port.parity.shared import STORE, seqs_digest

    key = (size, params_digest(params)[:16], seqs_digest(seqs), len(seqs), batch_size)
    return STORE.get(
        "port outputs", key, lambda: frozen(_jax_outputs(params, seqs, size, batch_size))
    )


def _jax_outputs(params, seqs: list[str], size: int, batch_size: int) -> Outputs:
    from unirep_port import jax_port
    from unirep_port.jax_port.positions import get_hidden_states_and_logits

    # One per-position pass gives what get_hidden_states and get_logits each give (the two run
    # the same compiled forward and keep one output; tests/test_port.py checks they agree).
    hs, logits = get_hidden_states_and_logits(seqs, params, size, batch_size=batch_size)
    h_avg, h_final, c_final = jax_port.get_reps(seqs, params, size)
    return Outputs(hs, logits, np.asarray(h_avg), np.asarray(h_final), np.asarray(c_final))


def run_parity(
    reference_params: Mapping[str, np.ndarray],
    port_params,
    panel: Sequence[tuple[str, str]],
    size: int,
    babbler=None,
    use_oracle: bool = True,
    reference_outputs: Outputs | None = None,
    stop_at_confirmed_failure: bool = False,
    tf_batch_size: int = 8,
) -> tuple[ParityResult, Outputs, Outputs]:
    """TF reference on ``reference_params`` vs the port on ``port_params`` over ``panel``.

    Sequences over tolerance get the evidence of :func:`conditioning_of` (teacher-forced step
    check, float64 oracle, float32 ensemble), which ``compare`` uses to tell float32 conditioning
    from porting error. ``babbler``: the reference graph on ``reference_params``, or a zero-
    argument function that builds it (called only when it is needed), or None to build one here.
    ``reference_outputs``: the reference's outputs on ``panel`` when already known (a verified
    cache, ``parity.refcache``); the graph is then built only if some sequence needs evidence.
    ``stop_at_confirmed_failure``: a gate's shortcut (``weights validate``): sequences over
    tolerance are investigated worst first, and once one fails its teacher-forced step check
    (so nothing can excuse it and the verdict is FAIL whatever the others show) the rest are left
    uninvestigated, unexcused; their indices are in ``result.not_investigated``.
    ``tf_batch_size``: sequences per reference ``session.run`` (a large panel runs faster in
    fuller batches; any batch gives a faithful float32 evaluation).
    """
    ids = [i for i, _ in panel]
    seqs = [s for _, s in panel]
    built: list = []

    def graph():
        if babbler is not None and hasattr(babbler, "run_batch"):
            return babbler
        if not built:
            built.append(babbler() if babbler is not None else None)
            if built[0] is None:
                from unirep_port import reference_tf  # imports TensorFlow: only when needed

                built[0] = reference_tf.Babbler(reference_params, size=size)
        return built[0]

    try:
        ref = (
            reference_outputs
            if reference_outputs is not None
            else tf_outputs(graph(), seqs, batch_size=tf_batch_size)
        )
        port = jax_outputs(port_params, seqs, size)
        result = compare(ref, port, ids, size)
        skipped: list[int] = []
        if use_oracle and not result.ok:
            todo = over_tolerance(result)
            if stop_at_confirmed_failure:
                todo = sorted(todo, key=lambda i: -_worst_ratio(result, i))
            cond = {}
            for n, i in enumerate(todo):
                if not stop_at_confirmed_failure and n % PREFETCH_GROUP == 0:
                    _prefetch(
                        reference_params, [seqs[j] for j in todo[n : n + PREFETCH_GROUP]], size
                    )
                cond[i] = conditioning_of(
                    graph(), reference_params, port_params, seqs[i], size, one(ref, i), one(port, i)
                )
                if stop_at_confirmed_failure and not cond[i].step_ok:
                    skipped = todo[n + 1 :]
                    break
            result = compare(ref, port, ids, size, conditioning=cond)
            result.conditioning = {ids[i]: c.summary() for i, c in cond.items()}
        result.not_investigated = [ids[i] for i in skipped]
    finally:
        if built and babbler is None:  # built here from nothing: ours to close
            built[0].close()
    return result, ref, port


def _prefetch(reference_params, seqs: list[str], size: int) -> None:
    """The evidence of a group computed in batches: one compiled-oracle run for the float64
    states and the free-running ensemble (``oracle_jax.prefetch``), then the teacher-forced
    steps' float64 step and members for all the group's rows at once (``stepwise.prefetch_steps``).
    """
    from unirep_port.parity import oracle, oracle_jax, stepwise

    if oracle.DEFAULT_BACKEND == "jax" and len(seqs) > 1:
        oracle_jax.prefetch(reference_params, size, seqs, members=ENSEMBLE_MEMBERS)
        stepwise.prefetch_steps(reference_params, seqs, size)


def _worst_ratio(result: ParityResult, i: int) -> float:
    """Sequence ``i``'s largest error over its tolerance, over the outputs."""
    row = result.error_vs_length[i]
    errs = [(row.get(f"err_{k}"), tolerance(k, row["length"])) for k in OUTPUTS]
    return max((e / t for e, t in errs if e is not None), default=0.0)


def conditioning_of(
    babbler, reference_params, port_params, seq: str, size: int, ref: Outputs, port: Outputs
) -> Conditioning:
    """Evidence for telling float32 conditioning from porting error on one sequence.

    ``ref`` and ``port`` hold the two implementations' outputs for this one sequence, as the
    comparison saw them (see :func:`one`). Gathers
    the teacher-forced step check (``stepwise.py``), the float64 oracle, and
    ``ENSEMBLE_MEMBERS`` independent float32 implementations (``oracle.float32_ensemble``): the
    drift of the witnesses (reference and members) from float64 says where the sequence is
    ill-conditioned and how far a faithful float32 implementation strays there; the port's own
    drift is measured the same way (``compare`` states the rule).
    """
    from unirep_port.parity.oracle import float32_ensemble
    from unirep_port.parity.stepwise import step_errors

    if ref.hs[0].shape != port.hs[0].shape:  # not even the same positions: nothing to weigh
        return Conditioning(False, {}, {})
    ev = step_errors(babbler, reference_params, port_params, seq, size)
    step_ok = ev.ok and ev.exact_hs.shape == ref.hs[0].shape  # the oracle saw the same positions
    scalars = {
        "max_step_h": float(ev.h_err.max()),
        "max_step_c_rel": float(ev.c_err.max()),
        "step_bound_ratio": ev.worst_ratio,
    }
    if not step_ok:  # a step differs: nothing will be excused, so skip the ensemble
        return Conditioning(False, {}, {}, **scalars)
    ens = float32_ensemble(reference_params, seq, size, members=ENSEMBLE_MEMBERS)
    exact = {"hs": ev.exact_hs, "logits": ev.exact_logits, **ev.exact_reps}

    def drift(name: str, outputs) -> np.ndarray | float:
        """Distance of one implementation's ``name`` from float64, as compare measures errors."""
        d = error_of(name, exact[name], np.asarray(getattr(outputs, name)[0]))
        return d if name in ("hs", "logits") else float(d[0])

    members = [one(ens, k) for k in range(len(ens.hs))]
    member_drift = {name: np.array([drift(name, m) for m in members]) for name in OUTPUTS}
    if (error_of("logits", ref.logits[0], port.logits[0]) > tolerance("logits", len(seq))).any():
        # the logits' verdict: witnesses whose logit layers add in orders of their own
        wl = witness_logits(ens.hs, reference_params[DENSE_W_KEY], reference_params[DENSE_B_KEY])
        member_drift["logits"] = np.array([error_of("logits", exact["logits"], x) for x in wl])
    return assess(
        step_ok,
        len(seq),
        ref_drift={name: drift(name, ref) for name in OUTPUTS},
        member_drift=member_drift,
        port_drift={name: drift(name, port) for name in OUTPUTS},
        **scalars,
    )


def one(outputs: Outputs, i: int) -> Outputs:
    """The outputs of sequence ``i`` alone, as an :class:`Outputs` of one."""
    return Outputs(
        [outputs.hs[i]],
        [outputs.logits[i]],
        *(np.asarray(getattr(outputs, k))[i : i + 1] for k in ("h_avg", "h_final", "c_final")),
    )
