"""What the judge says: a :class:`Verdict` per judgement, as markdown, JSON and an HTML page.

A verdict has one :class:`LeafResult` per output leaf (the per-place bound, the bulk test and the
power planted on that leaf), the oracle it used and its cross-check, and on a FAIL with taps one
:class:`TapResult` per tap in program order, naming the first that diverges.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field


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
    bulk: dict = field(default_factory=dict)  # drift.bulk_test of the candidate over all places
    # smallest relative change of the candidate on this leaf that fails the verdict (None: not
    # planted, or the verdict fails already), and which test caught it ("place" or "bulk")
    power: float | None = None
    power_caught_by: str | None = None
    ratio_by_position: list[float] = field(default_factory=list)  # worst over inputs
    reference_ratio_by_position: list[float] = field(default_factory=list)


@dataclass
class TapResult:
    """One tap of the candidate against the same tensor of the reference graph."""

    name: str
    tensor: str
    shape: str
    max_drift: float
    max_ratio: float  # drift / bound, worst over inputs and places
    reference_ratio: float
    status: str  # "ok", "diverges here", "inherited" (an earlier tap diverged), "reference off"
    bulk_ratio: float = float("nan")  # geometric-mean drift over the witnesses' (bulk test)
    bulk_ok: bool = True


@dataclass
class Verdict:
    """``ok`` when the candidate and the reference stay within their bounds at every place and
    the candidate passes the bulk test on every leaf."""

    ok: bool
    leaves: list[LeafResult]
    n_witnesses: int
    alpha: float
    tail_factor: float
    n_places: int
    notes: list[str] = field(default_factory=list)
    oracle: str = "custom"
    alpha_bulk: float = math.nan
    cross_check: dict | None = None
    taps: list[TapResult] = field(default_factory=list)

    @property
    def power(self) -> float | None:
        """The smallest relative change of the candidate (on any one leaf) this verdict catches."""
        got = [r.power for r in self.leaves if r.power is not None]
        return min(got) if got else None

    @property
    def first_diverging_tap(self) -> TapResult | None:
        return next((t for t in self.taps if t.status == "diverges here"), None)

    def failures(self) -> list[str]:
        """One line per failure, naming the leaf (or tap), its worst input and position."""
        out = []
        for r in self.leaves:
            where = "" if r.worst_position is None else f", position {r.worst_position}"
            if r.max_ratio > 1:
                out.append(
                    f"{r.output}: drift {r.max_drift:.3g} from float64 is {r.max_ratio:.3g}x its "
                    f"bound at input {r.worst_input}{where}"
                )
            if r.bulk and not r.bulk.get("ok", True):
                out.append(
                    f"{r.output}: in bulk the candidate is {r.bulk['ratio']:.3g}x as far from "
                    f"float64 as the witnesses over {r.bulk['n_places']} places (p = "
                    f"{r.bulk['p_value']:.2g} against {r.bulk['factor']:g}x, alpha "
                    f"{r.bulk['alpha']:g})"
                )
            if r.reference_ratio > 1:
                out.append(
                    f"{r.output}: the TF reference itself is {r.reference_ratio:.3g}x its bound "
                    "(the oracle does not compute the reference's math)"
                )
        if self.cross_check and not self.cross_check["ok"]:
            out.append(f"oracle cross-check failed: {self.cross_check['summary']}")
        first = self.first_diverging_tap
        if first is None and self.taps and not self.ok:
            out.append(
                f"every tap is within bound: the divergence arises after the last tap "
                f"({self.taps[-1].name})"
            )
        if first is not None:
            out.append(
                f"first diverging tap: {first.name} ({first.max_ratio:.3g}x its bound per "
                f"place, {first.bulk_ratio:.3g}x the witnesses in bulk); "
                + self._tap_context(first)
            )
        return out

    def _tap_context(self, first: TapResult) -> str:
        before = [t.name for t in self.taps[: self.taps.index(first)]]
        if not before:
            return "no tap before it: the divergence arises before it"
        return (
            f"the taps before it ({', '.join(before)}) are within bound: its own error, "
            f"arising between {before[-1]} and {first.name}"
        )

    def report(self) -> str:
        """A markdown table: one row per output leaf, then the taps, the failures, the notes."""
        power = "-" if self.power is None else f"{self.power:.2g}"
        lines = [
            f"Verdict: **{'PASS' if self.ok else 'FAIL'}** ({self.n_witnesses} witnesses, "
            f"{self.n_places} places, alpha {self.alpha:g}, tail factor {self.tail_factor:.3g}, "
            f"bulk alpha {self.alpha_bulk:g}, oracle {self.oracle}; power: the smallest "
            f"relative change caught is {power})",
            "",
            "| output | shape | max abs vs reference | max drift vs float64 | drift / bound "
            "| reference drift / bound | bulk: drift / witnesses | bulk p | power "
            "| worst input | worst position | ok |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.leaves:
            pos = "-" if r.worst_position is None else str(r.worst_position)
            bulk_r = f"{r.bulk['ratio']:.3g}" if r.bulk else "-"
            bulk_p = f"{r.bulk['p_value']:.2g}" if r.bulk else "-"
            pw = "-" if r.power is None else f"{r.power:.2g} ({r.power_caught_by})"
            lines.append(
                f"| {r.output} | {r.shape} | {r.max_abs_vs_reference:.3g} | {r.max_drift:.3g} "
                f"| {r.max_ratio:.3g} | {r.reference_ratio:.3g} | {bulk_r} | {bulk_p} | {pw} "
                f"| {r.worst_input} | {pos} | {'yes' if r.ok else '**no**'} |"
            )
        if self.taps:
            lines += [
                "",
                "| tap | tensor | shape | max drift | drift / bound | reference / bound "
                "| bulk: drift / witnesses | status |",
                "|---|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {t.name} | `{t.tensor}` | {t.shape} | {t.max_drift:.3g} "
                f"| {t.max_ratio:.3g} | {t.reference_ratio:.3g} | {t.bulk_ratio:.3g} "
                f"| {t.status} |"
                for t in self.taps
            ]
        lines += [f"- {n}" for n in [*self.failures(), *self.notes]]
        if self.cross_check and self.cross_check["ok"]:
            lines.append(f"- oracle cross-check: {self.cross_check['summary']}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "ok": bool(self.ok),
            "n_witnesses": self.n_witnesses,
            "alpha": self.alpha,
            "alpha_bulk": self.alpha_bulk,
            "tail_factor": self.tail_factor,
            "n_places": self.n_places,
            "oracle": self.oracle,
            "power": self.power,
            "cross_check": self.cross_check,
            "leaves": [asdict(r) for r in self.leaves],
            "taps": [asdict(t) for t in self.taps],
            "first_diverging_tap": None
            if self.first_diverging_tap is None
            else self.first_diverging_tap.name,
            "failures": self.failures(),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_jsonable)

    def to_html(self, title: str = "Port verdict") -> str:
        """One self-contained page: the verdict and per-output table first, then the figures."""
        from unirep_port.porting.html import verdict_page

        return verdict_page(self, title)


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")
