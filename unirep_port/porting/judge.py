"""The generic judge: is a JAX port of a TensorFlow function as close to exact as float32 allows?

For every example input the judge has four voices: the TF reference (float32), the candidate
(a JAX function), the exact result (float64) and ``members`` float32 witnesses, independent
float32 evaluations of the same math that round differently. The last two come from an
:class:`Oracle`; by default the automatic conversion of the reference (:func:`from_tf`): its
float64 twin under a scoped x64 switch is the exact result, and the float32 conversion with every
parameter nudged by one ulp (up, down or not, seeded) gives each witness.

The bound is the suite's (``unirep_port.parity.drift``): at each place, the candidate's drift
from float64 must stay within ``tail_factor(n, alpha / n_places) * rms(witness drifts) +
floor_of(value)``, with the TF reference one of the ``n`` witnesses. The reference is judged the
same way against the oracle's witnesses alone: a reference out of its bound means the oracle is
not the reference's math, and the verdict fails rather than trust it. A place is one output leaf
of one input, and one position of it when the leaf has a time axis; its drift is the largest
absolute difference over the place's defined elements (padding excluded with ``lengths``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import jax
import numpy as np

from unirep_port.parity import drift
from unirep_port.porting.convert import Converted, from_tf, x64


class Oracle(Protocol):
    """The exact result and float32 witnesses of the reference's math for one input.

    ``oracle(*args, members=K, seed=S) -> (exact, witnesses)``: ``exact`` is the output pytree
    in float64 NumPy; ``witnesses`` is a list of ``K`` output pytrees in float32 NumPy, each an
    independent float32 evaluation of the same math (rounding differently, seeded by ``S``). Both
    have the structure of the reference's outputs for ``args`` (an array or a tuple of arrays).
    Implementations: :class:`AutoOracle` (the default: the reference's automatic conversion) and,
    for UniRep, ``unirep_port.parity.porting_unirep.suite_oracle``, which adapts the suite's
    oracles (the NumPy ``parity.oracle`` or the compiled ``parity.oracle_jax``, both with
    ``oracle_outputs``/``float32_ensemble``) for ``(tokens, lengths)`` batches.
    """

    def __call__(self, *args: Any, members: int, seed: int) -> tuple[Any, list[Any]]: ...


def _nudge(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each element one ulp up, one ulp down or unchanged, uniformly (unbiased)."""
    d = rng.integers(-1, 2, x.shape)  # -1, 0, +1
    up, down = np.nextafter(x, np.inf), np.nextafter(x, -np.inf)
    return np.where(d > 0, up, np.where(d < 0, down, x)).astype(x.dtype)


def _to64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def _key_of(args) -> tuple:
    return tuple((a.shape, a.dtype.str, a.tobytes()) for a in jax.tree.leaves(args))


class AutoOracle:
    """The :class:`Oracle` of a converted TF function: float64 twin and ulp-nudged witnesses."""

    def __init__(self, port: Converted):
        self.port = port
        self._f32 = jax.jit(port.fn)
        self._f64 = None
        self._memo: dict[tuple, tuple] = {}  # one judge run per candidate asks the same inputs

    @classmethod
    def of(cls, reference, *example_args) -> AutoOracle:
        return cls(from_tf(reference, *example_args))

    def __call__(self, *args, members: int, seed: int):
        key = (members, seed, *_key_of(args))
        if key not in self._memo:
            self._memo[key] = self._compute(args, members, seed)
        exact, witnesses = self._memo[key]
        return exact, list(witnesses)

    def _compute(self, args, members: int, seed: int):
        twin = self.port.float64()
        with x64():
            if self._f64 is None:
                self._f64 = jax.jit(twin.fn)
            exact = jax.tree.map(np.asarray, self._f64(twin.params, *jax.tree.map(_to64, args)))
        rng = np.random.default_rng(seed)
        witnesses = []
        for _ in range(members):
            nudged = {n: _nudge(v, rng) for n, v in self.port.params.items()}
            witnesses.append(jax.tree.map(np.asarray, self._f32(nudged, *args)))
        return exact, witnesses


@dataclass
class LeafResult:
    """The verdict on one output leaf over all inputs."""

    output: str
    shape: str
    max_abs_vs_reference: float
    max_drift: float  # candidate vs float64, largest over places
    max_ratio: float  # candidate drift / bound, largest over places
    reference_ratio: float  # the TF reference's drift / its bound, largest over places
    worst_input: int
    worst_position: int | None
    n_places: int
    ok: bool


@dataclass
class Verdict:
    """``ok`` when the candidate and the reference stay within their bounds at every place."""

    ok: bool
    leaves: list[LeafResult]
    n_witnesses: int
    alpha: float
    tail_factor: float
    n_places: int
    notes: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """One line per failing leaf, naming it, its worst input and position."""
        out = []
        for r in self.leaves:
            if r.max_ratio > 1:
                where = "" if r.worst_position is None else f", position {r.worst_position}"
                out.append(
                    f"{r.output}: drift {r.max_drift:.3g} from float64 is {r.max_ratio:.3g}x its "
                    f"bound at input {r.worst_input}{where}"
                )
            if r.reference_ratio > 1:
                out.append(
                    f"{r.output}: the TF reference itself is {r.reference_ratio:.3g}x its bound "
                    "(the oracle does not compute the reference's math)"
                )
        return out

    def report(self) -> str:
        """A markdown table: one row per output leaf."""
        lines = [
            f"Verdict: **{'PASS' if self.ok else 'FAIL'}** ({self.n_witnesses} witnesses, "
            f"{self.n_places} places, alpha {self.alpha:g}, tail factor {self.tail_factor:.3g})",
            "",
            "| output | shape | max abs vs reference | max drift vs float64 | drift / bound "
            "| reference drift / bound | worst input | worst position | ok |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.leaves:
            pos = "-" if r.worst_position is None else str(r.worst_position)
            lines.append(
                f"| {r.output} | {r.shape} | {r.max_abs_vs_reference:.3g} | {r.max_drift:.3g} "
                f"| {r.max_ratio:.3g} | {r.reference_ratio:.3g} | {r.worst_input} | {pos} "
                f"| {'yes' if r.ok else '**no**'} |"
            )
        lines += [f"- {n}" for n in [*self.failures(), *self.notes]]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "ok": bool(self.ok),
            "n_witnesses": self.n_witnesses,
            "alpha": self.alpha,
            "tail_factor": self.tail_factor,
            "n_places": self.n_places,
            "leaves": [asdict(r) for r in self.leaves],
            "failures": self.failures(),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def _leaves(tree, what: str) -> list[np.ndarray]:
    if isinstance(tree, dict):
        raise TypeError(f"{what}: outputs must be an array or a tuple of arrays, got a dict")
    flat = jax.tree.leaves(tree)
    return [np.asarray(a) for a in flat]


def _run_reference(reference, args) -> list[np.ndarray]:
    out = reference(*args)
    if isinstance(out, (tuple, list)):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]


def _place_drift(diff: np.ndarray, valid: np.ndarray | None, t_axis: int | None) -> np.ndarray:
    """Largest |diff| per place: per position along ``t_axis``, else one place. (P,)"""
    d = np.abs(np.asarray(diff, np.float64))
    d = np.where(np.isnan(d), np.inf, d)  # a NaN is as far off as it gets, never "within bound"
    if valid is not None:
        d = np.where(valid, d, 0.0)
    if t_axis is None:
        return np.array([d.max(initial=0.0)])
    return np.moveaxis(d, t_axis, 0).reshape(d.shape[t_axis], -1).max(axis=1, initial=0.0)


def _valid_mask(shape, t_axis, lengths) -> np.ndarray | None:
    """(B, T) 'position < length' broadcast over a leaf with batch axis 0 and time ``t_axis``."""
    if lengths is None or t_axis is None:
        return None
    lengths = np.asarray(lengths)
    if lengths.shape != (shape[0],):
        raise ValueError(f"lengths must have shape ({shape[0]},), got {lengths.shape}")
    pos = np.arange(shape[t_axis])
    view = [1] * len(shape)
    view[0], view[t_axis] = shape[0], shape[t_axis]
    mask = (pos[None, :] < lengths[:, None]).reshape(view)
    return np.broadcast_to(mask, shape)


def judge(
    reference,
    candidate: Callable,
    inputs: Sequence[tuple],
    *,
    time_axis: int | Sequence[int | None] | None = None,
    lengths: Callable | None = None,
    names: Sequence[str] | None = None,
    oracle: Oracle | None = None,
    members: int = 8,
    seed: int = 0,
    alpha: float = drift.ALPHA_SEQUENCE,
) -> Verdict:
    """Judge ``candidate`` (a JAX port) against ``reference`` (a TF function) on ``inputs``.

    Args:
        reference: a ``tf.function`` (weights as variables or constants) or a
            :class:`~unirep_port.porting.TFGraph` (a ``tf.compat.v1`` graph builder), returning
            an array or a tuple of arrays. With a custom ``oracle`` any callable returning
            arrays will do (e.g. a session-backed reference).
        candidate: a JAX function taking the same positional arguments, returning the same
            structure.
        inputs: example argument tuples, e.g. ``[(x, lengths), ...]`` (NumPy arrays, or pytrees
            of them with a custom ``oracle``; the automatic one converts flat arrays).
        time_axis: the time axis of every output leaf, or one entry per leaf (None: no time
            axis); each position of a time axis is a place of its own.
        lengths: ``lengths(*args) -> (B,)`` valid positions per batch row (batch axis 0); the
            positions past them are padding the reference need not define, and are skipped.
        names: labels of the output leaves in the report (default ``[0]``, ``[1]``...).
        oracle: exact result and witnesses (:class:`Oracle`); default :class:`AutoOracle` of
            ``from_tf(reference, *inputs[0])``.
        members: float32 witnesses asked of the oracle (the TF reference is one more).
        seed: seed of the witnesses (input ``i`` uses ``seed + i``).
        alpha: false-alarm probability of a faithful candidate over the whole judgement
            (Bonferroni over places).

    Returns:
        :class:`Verdict`.
    """
    inputs = [tuple(jax.tree.map(np.asarray, tuple(args))) for args in inputs]  # pytrees kept
    if not inputs:
        raise ValueError("judge: no inputs")
    if members < 1:
        raise ValueError(f"judge: members must be >= 1, got {members}")
    if oracle is None:
        oracle = AutoOracle.of(reference, *inputs[0])
    per_leaf: dict[int, dict] = {}
    notes: list[str] = []
    for i, args in enumerate(inputs):
        ref = _run_reference(reference, args)
        cand = _leaves(candidate(*args), "candidate")
        exact_tree, wit_trees = oracle(*args, members=members, seed=seed + i)
        exact = _leaves(exact_tree, "oracle")
        wits = [_leaves(w, "oracle witness") for w in wit_trees]
        if len(wits) != members:
            raise ValueError(f"oracle returned {len(wits)} witnesses, asked for {members}")
        label = list(names) if names else [f"[{j}]" for j in range(len(ref))]
        if len(label) != len(ref):
            raise ValueError(f"names: {len(label)} given, the reference has {len(ref)} outputs")
        for what, got in (("candidate", cand), ("oracle", exact), *(("witness", w) for w in wits)):
            if len(got) != len(ref):
                raise ValueError(
                    f"input {i}: {what} returned {len(got)} outputs, reference {len(ref)}"
                )
            for j, (a, b) in enumerate(zip(got, ref)):
                if a.shape != b.shape:
                    raise ValueError(
                        f"input {i}, output {label[j]}: {what} shape {a.shape}, reference {b.shape}"
                    )
        axes = time_axis if isinstance(time_axis, (list, tuple)) else [time_axis] * len(ref)
        lens = None if lengths is None else lengths(*args)
        for j, e in enumerate(exact):
            t = axes[j]
            valid = _valid_mask(e.shape, t, lens)
            absval = np.abs(e) if valid is None else np.where(valid, np.abs(e), 0.0)
            leaf = per_leaf.setdefault(j, {"rows": [], "name": label[j], "shape": e.shape})
            vs_ref = _place_drift(np.asarray(cand[j], np.float64) - ref[j], valid, t)
            leaf["rows"].append(
                {
                    "cand": _place_drift(cand[j] - e, valid, t),
                    "ref": _place_drift(ref[j] - e, valid, t),
                    "wit": np.stack([_place_drift(w[j] - e, valid, t) for w in wits]),
                    "floor": drift.floor_of(_place_drift(absval, None, t)),
                    "vs_ref": vs_ref.max(initial=0.0),
                    "defined": _place_drift(np.ones(e.shape), valid, t) > 0,
                    "timed": t is not None,
                }
            )
    n_places = sum(int(r["defined"].sum()) for leaf in per_leaf.values() for r in leaf["rows"])
    k_cand = drift.tail_factor(members + 1, alpha / n_places)
    k_ref = drift.tail_factor(members, alpha / n_places)
    leaves = []
    for leaf in per_leaf.values():
        worst = (-1.0, 0, None, 0.0)
        ref_ratio, vs_ref, count = 0.0, 0.0, 0
        for i, r in enumerate(leaf["rows"]):
            d = r["defined"]
            all_w = np.concatenate([r["wit"], r["ref"][None]])  # (K+1, P): the TF ref witnesses
            ratio = r["cand"] / (k_cand * drift.rms(all_w) + r["floor"])
            rr = r["ref"] / (k_ref * drift.rms(r["wit"]) + r["floor"])
            ratio, rr = np.where(d, ratio, 0.0), np.where(d, rr, 0.0)
            p = int(np.argmax(ratio))
            if ratio[p] > worst[0]:
                worst = (float(ratio[p]), i, p if r["timed"] else None, float(r["cand"][p]))
            ref_ratio = max(ref_ratio, float(rr.max(initial=0.0)))
            vs_ref = max(vs_ref, float(r["vs_ref"]))
            count += int(d.sum())
        if all(np.all(r["wit"] == r["wit"][:1]) for r in leaf["rows"]) and members > 1:
            notes.append(f"{leaf['name']}: the {members} witnesses coincide (nothing to nudge?)")
        leaves.append(
            LeafResult(
                output=leaf["name"],
                shape="x".join(map(str, leaf["shape"])),
                max_abs_vs_reference=vs_ref,
                max_drift=worst[3],
                max_ratio=worst[0],
                reference_ratio=ref_ratio,
                worst_input=worst[1],
                worst_position=worst[2],
                n_places=count,
                ok=worst[0] <= 1.0 and ref_ratio <= 1.0,
            )
        )
    return Verdict(
        ok=all(r.ok for r in leaves),
        leaves=leaves,
        n_witnesses=members + 1,
        alpha=alpha,
        tail_factor=k_cand,
        n_places=n_places,
        notes=notes,
    )
