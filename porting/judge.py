"""The generic judge: is a JAX port of a TensorFlow function as close to exact as float32 allows?

For every example input the judge has four voices: the TF reference (float32), the candidate
(a JAX function), the exact result (float64) and ``members`` float32 witnesses, independent
float32 evaluations of the same math that round differently. The last two come from an oracle
(:mod:`unirep_port.porting.oracles`): the automatic conversion's float64 twin where tf2jax (with
the kit's rules) converts the graph, TF's own float64 twin otherwise, the two cross-checked where
both exist; or one of the caller's own.

Three checks, every bound from :mod:`unirep_port.porting.drift` and measured on the inputs judged:

* **Per place.** The candidate's drift from float64 must stay within ``tail_factor(n, alpha /
  n_places) * rms(witness drifts) + floor_of(value)``, with the TF reference one of the ``n``
  witnesses. The reference is judged the same way against the oracle's witnesses alone: a
  reference out of its bound means the oracle is not the reference's math, and the verdict fails
  rather than trust it. A place is one output leaf of one input, and one position of it when the
  leaf has a time axis; its drift is the largest absolute difference over the place's defined
  elements (padding excluded with ``lengths``).
* **In bulk.** Per leaf, over all its places: :func:`drift.bulk_test` (the candidate's
  geometric-mean drift against the witnesses', beyond ``drift.BULK_FACTOR``), at
  ``alpha_bulk / n_leaves``. A port a little off everywhere fails here even when every place
  stays inside its bound.
* **Power.** Each verdict plants a relative change ``delta`` on one leaf of the candidate's own
  outputs and finds, by bisection, the smallest ``delta`` the verdict catches (per leaf; the
  verdict's power is the smallest).

On a FAIL with ``taps``, every tap of the candidate (:func:`~unirep_port.porting.taps.tap`) is
bounded against the same tensor of the reference graph (TF's float64 twin and witnesses), and the
first out of bound in program order is named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np

from unirep_port.porting import drift
from unirep_port.porting import taps as taps_mod
from unirep_port.porting.oracles import AutoOracle, choose_oracle
from unirep_port.porting.verdict import LeafResult, TapResult, Verdict

__all__ = ["AutoOracle", "LeafResult", "Oracle", "TapResult", "Verdict", "judge"]


class Oracle(Protocol):
    """The exact result and float32 witnesses of the reference's math for one input.

    ``oracle(*args, members=K, seed=S) -> (exact, witnesses)``: ``exact`` is the output pytree
    in float64 NumPy; ``witnesses`` is a list of ``K`` output pytrees in float32 NumPy, each an
    independent float32 evaluation of the same math (rounding differently, seeded by ``S``). Both
    have the structure of the reference's outputs for ``args`` (an array or a tuple of arrays).
    Implementations: :class:`~unirep_port.porting.oracles.AutoOracle` (the automatic conversion),
    :class:`~unirep_port.porting.tforacle.TFOracle` (TF's float64 twin) and, for UniRep,
    ``unirep_port.parity.porting_unirep.suite_oracle``.
    """

    def __call__(self, *args: Any, members: int, seed: int) -> tuple[Any, list[Any]]: ...


# ----- evidence: per leaf, per input, per place -----------------------------------------------
@dataclass
class _Leaf:
    """What one output leaf showed over all inputs (lists indexed by input)."""

    name: str
    shape: tuple
    t_axis: int | None
    cand: list = field(default_factory=list)  # (P,) candidate drift from float64
    ref: list = field(default_factory=list)  # (P,) TF reference drift
    wit: list = field(default_factory=list)  # (K, P) witness drifts
    floor: list = field(default_factory=list)  # (P,) drift.floor_of the place's largest value
    ulp: list = field(default_factory=list)  # (P,) one float32 ulp of it (the bulk test's scale)
    defined: list = field(default_factory=list)  # (P,) bool: the place has defined elements
    diff: list = field(default_factory=list)  # candidate - exact, padding zeroed (for planting)
    value: list = field(default_factory=list)  # candidate, padding zeroed (for planting)
    vs_ref: float = 0.0


def _place_max(a: np.ndarray, t_axis: int | None) -> np.ndarray:
    """Largest entry per place: per position along ``t_axis``, else one place. (P,)"""
    if t_axis is None:
        return np.array([a.max(initial=0.0)])
    return np.moveaxis(a, t_axis, 0).reshape(a.shape[t_axis], -1).max(axis=1, initial=0.0)


def _drift(diff: np.ndarray, valid: np.ndarray | None, t_axis: int | None) -> np.ndarray:
    d = np.abs(np.asarray(diff, np.float64))
    d = np.where(np.isnan(d), np.inf, d)  # a NaN is as far off as it gets, never "within bound"
    if valid is not None:
        d = np.where(valid, d, 0.0)
    return _place_max(d, t_axis)


def _valid_mask(shape, t_axis, lengths) -> np.ndarray | None:
    """(B, T) 'position < length' broadcast over a leaf with batch axis 0 and time ``t_axis``."""
    if lengths is None or t_axis is None:
        return None
    lengths = np.asarray(lengths)
    if lengths.shape != (shape[0],):
        raise ValueError(f"lengths must have shape ({shape[0]},), got {lengths.shape}")
    view = [1] * len(shape)
    view[0], view[t_axis] = shape[0], shape[t_axis]
    mask = (np.arange(shape[t_axis])[None, :] < lengths[:, None]).reshape(view)
    return np.broadcast_to(mask, shape)


def _leaves(tree, what: str) -> list[np.ndarray]:
    if isinstance(tree, dict):
        raise TypeError(f"{what}: outputs must be an array or a tuple of arrays, got a dict")
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _check_shapes(i, label, ref, voices) -> None:
    for what, got in voices:
        if len(got) != len(ref):
            raise ValueError(f"input {i}: {what} returned {len(got)} outputs, reference {len(ref)}")
        for j, (a, b) in enumerate(zip(got, ref)):
            if a.shape != b.shape:
                raise ValueError(
                    f"input {i}, output {label[j]}: {what} shape {a.shape}, reference {b.shape}"
                )


def _add(leaf: _Leaf, cand, ref, exact, wits, lens) -> None:
    """One input's evidence on one leaf."""
    t = leaf.t_axis
    valid = _valid_mask(exact.shape, t, lens)
    keep = (lambda a: a) if valid is None else (lambda a: np.where(valid, a, 0.0))
    absval = keep(np.abs(exact))
    biggest = _place_max(absval, t)
    leaf.cand.append(_drift(cand - exact, valid, t))
    leaf.ref.append(_drift(ref - exact, valid, t))
    leaf.wit.append(np.stack([_drift(w - exact, valid, t) for w in wits]))
    leaf.floor.append(drift.floor_of(biggest))
    leaf.ulp.append(np.maximum(drift.U32 * biggest, np.finfo(np.float32).tiny))
    leaf.defined.append(_drift(np.ones(exact.shape), valid, t) > 0)
    leaf.diff.append(keep(np.asarray(cand, np.float64) - exact))
    leaf.value.append(keep(np.asarray(cand, np.float64)))
    leaf.vs_ref = max(
        leaf.vs_ref, float(_drift(np.asarray(cand, np.float64) - ref, valid, t).max())
    )


def _collect(reference, candidate, inputs, oracle, *, names, time_axis, lengths, members, seed):
    """Run every voice on every input; one :class:`_Leaf` per output leaf."""
    leaves: list[_Leaf] = []
    for i, args in enumerate(inputs):
        ref = _leaves(reference(*args), "reference")
        cand = _leaves(candidate(*args), "candidate")
        exact_tree, wit_trees = oracle(*args, members=members, seed=seed + i)
        exact = [np.asarray(e, np.float64) for e in _leaves(exact_tree, "oracle")]
        wits = [_leaves(w, "oracle witness") for w in wit_trees]
        if len(wits) != members:
            raise ValueError(f"oracle returned {len(wits)} witnesses, asked for {members}")
        label = list(names) if names else [f"[{j}]" for j in range(len(ref))]
        if len(label) != len(ref):
            raise ValueError(f"names: {len(label)} given, the reference has {len(ref)} outputs")
        _check_shapes(
            i, label, ref, [("candidate", cand), ("oracle", exact)] + [("witness", w) for w in wits]
        )
        axes = time_axis if isinstance(time_axis, (list, tuple)) else [time_axis] * len(ref)
        lens = None if lengths is None else lengths(*args)
        for j, e in enumerate(exact):
            if i == 0:
                leaves.append(_Leaf(label[j], e.shape, axes[j]))
            _add(leaves[j], cand[j], ref[j], e, [w[j] for w in wits], lens)
    return leaves


# ----- decisions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Rule:
    k_cand: float  # tail factor of the candidate (witnesses + the TF reference)
    k_ref: float  # tail factor of the TF reference (witnesses alone)
    alpha_bulk: float  # per leaf


def _ratios(leaf: _Leaf, rule: _Rule, cand: list | None = None):
    """Per input: candidate and reference drift / bound, zero where nothing is defined."""
    cand = leaf.cand if cand is None else cand
    out, ref_out = [], []
    for c, r, w, f, d in zip(cand, leaf.ref, leaf.wit, leaf.floor, leaf.defined):
        all_w = np.concatenate([w, r[None]])  # (K+1, P): the TF reference witnesses too
        out.append(np.where(d, c / drift.bound(all_w, f, rule.k_cand), 0.0))
        ref_out.append(np.where(d, r / drift.bound(w, f, rule.k_ref), 0.0))
    return out, ref_out


def _bulk(leaf: _Leaf, rule: _Rule, cand: list | None = None) -> dict:
    cand = leaf.cand if cand is None else cand
    d = np.concatenate(leaf.defined)
    wit = np.concatenate([np.concatenate([w, r[None]]) for w, r in zip(leaf.wit, leaf.ref)], 1)
    return drift.bulk_test(
        np.concatenate(cand)[d], wit[:, d], np.concatenate(leaf.ulp)[d], alpha=rule.alpha_bulk
    )


def _fails(leaf: _Leaf, rule: _Rule, cand: list) -> str | None:
    """Which test a candidate with these drifts fails on this leaf ("place", "bulk") or None."""
    ratios, _ = _ratios(leaf, rule, cand)
    if max(float(r.max(initial=0.0)) for r in ratios) > 1:
        return "place"
    return None if _bulk(leaf, rule, cand)["ok"] else "bulk"


def _power(leaf: _Leaf, rule: _Rule) -> tuple[float | None, str | None]:
    """The smallest ``delta`` such that the candidate times ``1 + delta`` on this leaf fails."""

    def planted(delta):
        return [_drift(df + delta * v, None, leaf.t_axis) for df, v in zip(leaf.diff, leaf.value)]

    lo, hi = -12.0, 0.0  # log10(delta)
    if _fails(leaf, rule, planted(10.0**hi)) is None:
        return None, None  # not even a 100% change: nothing to catch it with
    for _ in range(16):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _fails(leaf, rule, planted(10.0**mid)) else (mid, hi)
    return 10.0**hi, _fails(leaf, rule, planted(10.0**hi))


def _decide(leaf: _Leaf, rule: _Rule, with_power: bool) -> LeafResult:
    ratios, ref_ratios = _ratios(leaf, rule)
    worst_i = int(np.argmax([r.max(initial=0.0) for r in ratios]))
    p = int(np.argmax(ratios[worst_i]))
    by_pos = _by_position(ratios) if leaf.t_axis is not None else []
    bulk = _bulk(leaf, rule)
    ref_ratio = max(float(r.max(initial=0.0)) for r in ref_ratios)
    ok = float(ratios[worst_i][p]) <= 1.0 and ref_ratio <= 1.0 and bulk["ok"]
    power, caught = _power(leaf, rule) if (ok and with_power) else (None, None)
    return LeafResult(
        output=leaf.name,
        shape="x".join(map(str, leaf.shape)),
        max_abs_vs_reference=leaf.vs_ref,
        max_drift=float(leaf.cand[worst_i][p]),
        max_ratio=float(ratios[worst_i][p]),
        reference_ratio=ref_ratio,
        worst_input=worst_i,
        worst_position=p if leaf.t_axis is not None else None,
        n_places=int(sum(d.sum() for d in leaf.defined)),
        ok=ok,
        bulk=bulk,
        power=power,
        power_caught_by=caught,
        ratio_by_position=by_pos,
        reference_ratio_by_position=_by_position(ref_ratios) if by_pos else [],
    )


def _by_position(ratios: list[np.ndarray]) -> list[float]:
    """Worst ratio per position over inputs (inputs may differ in length)."""
    n = max(len(r) for r in ratios)
    out = np.zeros(n)
    for r in ratios:
        out[: len(r)] = np.maximum(out[: len(r)], r)
    return [float(x) for x in out]


# ----- taps -------------------------------------------------------------------------------------
def _tap_spec(taps: Mapping) -> dict[str, tuple[str, int | None]]:
    out = {}
    for name, where in taps.items():
        tensor, t_axis = (where, None) if isinstance(where, str) else tuple(where)
        out[name] = (tensor if ":" in tensor else f"{tensor}:0", t_axis)
    return out


def _localise(
    candidate, inputs, taps: Mapping, tf_oracle, *, members, seed, alpha, alpha_bulk, lengths
):
    """Bound every tap against the reference graph's tensor; program order, first divergence."""
    spec = _tap_spec(taps)
    known = set(tf_oracle.tensor_names())
    missing = [f"{n!r} -> {t!r}" for n, (t, _) in spec.items() if t not in known]
    if missing:
        raise ValueError(f"taps name tensors the reference graph does not have: {missing}")
    tensors = [t for t, _ in spec.values()]
    found: dict[str, _Leaf] = {}
    order: list[str] = []
    for i, args in enumerate(inputs):
        got = taps_mod.tapped(candidate, args)
        if i == 0:
            order = [n for n in got if n in spec]
            absent = sorted(set(spec) - set(got))
            if absent:
                raise ValueError(f"taps never reached by the candidate: {absent}")
        _, _, (exact, wits) = tf_oracle(*args, members=members, seed=seed + i, tensors=tensors)
        ref = tf_oracle.float32(*args, tensors=tensors)
        lens = None if lengths is None else lengths(*args)
        for j, (name, (tensor, t_axis)) in enumerate(spec.items()):
            e = np.asarray(exact[j], np.float64)
            if got[name].shape != e.shape:
                raise ValueError(
                    f"tap {name!r}: candidate shape {got[name].shape}, reference "
                    f"tensor {tensor!r} shape {e.shape}"
                )
            leaf = found.setdefault(name, _Leaf(name, e.shape, t_axis))
            _add(leaf, got[name], ref[j], e, [w[j] for w in wits], lens)
    n_places = sum(int(sum(d.sum() for d in f.defined)) for f in found.values())
    rule = _Rule(
        drift.tail_factor(members + 1, alpha / n_places),
        drift.tail_factor(members, alpha / n_places),
        alpha_bulk / len(found),
    )
    return _tap_results(order, spec, found, rule)


def _tap_results(order, spec, found, rule) -> list[TapResult]:
    out, diverged = [], False
    for name in order:
        leaf = found[name]
        ratios, ref_ratios = _ratios(leaf, rule)
        worst = max(float(r.max(initial=0.0)) for r in ratios)
        ref_worst = max(float(r.max(initial=0.0)) for r in ref_ratios)
        bulk = _bulk(leaf, rule)
        if ref_worst > 1:
            status = "reference off"
        elif worst <= 1 and bulk["ok"]:
            status = "ok"
        else:
            status, diverged = ("inherited" if diverged else "diverges here"), True
        out.append(
            TapResult(
                name,
                spec[name][0],
                "x".join(map(str, leaf.shape)),
                max(float(c.max(initial=0.0)) for c in leaf.cand),
                worst,
                ref_worst,
                status,
                bulk["ratio"],
                bulk["ok"],
            )
        )
    return out


# ----- the judge --------------------------------------------------------------------------------
def _verdict(leaves, chosen, first_input, members, alpha, alpha_bulk, power) -> Verdict:
    """Decide every leaf (per place, in bulk, its power) and cross-check the oracles."""
    n_places = sum(int(sum(d.sum() for d in leaf.defined)) for leaf in leaves)
    rule = _Rule(
        drift.tail_factor(members + 1, alpha / n_places),
        drift.tail_factor(members, alpha / n_places),
        alpha_bulk / len(leaves),
    )
    results = [_decide(leaf, rule, power) for leaf in leaves]
    notes = list(chosen.notes)
    for leaf in leaves:
        if members > 1 and all(np.all(w == w[:1]) for w in leaf.wit):
            notes.append(f"{leaf.name}: the {members} witnesses coincide (nothing to nudge?)")
    cross = chosen.cross_check(first_input)
    return Verdict(
        ok=all(r.ok for r in results) and (cross is None or cross["ok"]),
        leaves=results,
        n_witnesses=members + 1,
        alpha=alpha,
        tail_factor=rule.k_cand,
        n_places=n_places,
        notes=notes,
        oracle=chosen.name,
        alpha_bulk=alpha_bulk,
        cross_check=cross,
    )


def judge(
    reference,
    candidate: Callable,
    inputs: Sequence[tuple],
    *,
    time_axis: int | Sequence[int | None] | None = None,
    lengths: Callable | None = None,
    names: Sequence[str] | None = None,
    oracle: Oracle | str | None = "auto",
    members: int = 8,
    seed: int = 0,
    alpha: float = drift.ALPHA_SEQUENCE,
    alpha_bulk: float = drift.ALPHA_BULK,
    taps: Mapping[str, str | tuple[str, int | None]] | None = None,
    power: bool = True,
) -> Verdict:
    """Judge ``candidate`` (a JAX port) against ``reference`` (a TF function) on ``inputs``.

    Args:
        reference: a ``tf.function`` (weights as variables or constants) or a
            :class:`~unirep_port.porting.TFGraph` (a ``tf.compat.v1`` graph builder), returning
            an array or a tuple of arrays. With an oracle of your own any callable returning
            arrays will do (e.g. a session-backed reference).
        candidate: a JAX function taking the same positional arguments, returning the same
            structure.
        inputs: example argument tuples, e.g. ``[(x, lengths), ...]`` (NumPy arrays, or pytrees
            of them with an oracle of your own; the built-in ones take flat arrays).
        time_axis: the time axis of every output leaf, or one entry per leaf (None: no time
            axis); each position of a time axis is a place of its own.
        lengths: ``lengths(*args) -> (B,)`` valid positions per batch row (batch axis 0); the
            positions past them are padding the reference need not define, and are skipped.
        names: labels of the output leaves in the report (default ``[0]``, ``[1]``...).
        oracle: ``"auto"`` (default: the automatic conversion where it converts, TF's float64
            twin otherwise, cross-checked where both run), ``"tf"`` (TF's float64 twin only),
            ``"convert"`` (the automatic conversion only), an :class:`Oracle` of your own, or
            a ``choose_oracle(...)`` result reused across judgements of one reference.
        members: float32 witnesses asked of the oracle (the TF reference is one more).
        seed: seed of the witnesses (input ``i`` uses ``seed + i``).
        alpha: false-alarm probability of a faithful candidate over all places (Bonferroni).
        alpha_bulk: false-alarm probability of the bulk tests (Bonferroni over leaves).
        taps: ``{tap name: reference tensor name}`` (or ``(tensor name, time axis)``), for the
            candidate's :func:`~unirep_port.porting.tap` calls; bounded on a FAIL.
        power: plant relative changes to measure each leaf's power (cheap: no model reruns).

    Returns:
        :class:`~unirep_port.porting.verdict.Verdict`.
    """
    inputs = [tuple(jax.tree.map(np.asarray, tuple(args))) for args in inputs]  # pytrees kept
    if not inputs:
        raise ValueError("judge: no inputs")
    if members < 1:
        raise ValueError(f"judge: members must be >= 1, got {members}")
    chosen = choose_oracle(reference, inputs[0], oracle, need_tf=bool(taps))
    leaves = _collect(
        reference,
        candidate,
        inputs,
        chosen.oracle,
        names=names,
        time_axis=time_axis,
        lengths=lengths,
        members=members,
        seed=seed,
    )
    verdict = _verdict(leaves, chosen, inputs[0], members, alpha, alpha_bulk, power)
    if taps and not verdict.ok:
        kw = dict(members=members, seed=seed, alpha=alpha, alpha_bulk=alpha_bulk, lengths=lengths)
        verdict.taps = _localise(candidate, inputs, taps, chosen.tf, **kw)
    return verdict
