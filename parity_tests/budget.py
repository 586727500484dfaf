"""How often a run of the parity suite fails a faithful port by chance: its false-alarm budget.

Every statistical verdict of the suite has a stated false-alarm rate (``porting/drift.py``'s
alphas, the panels' sign tests at their tier's level). Whatever their dependence, the chance that
a run fails a faithful port is at most the sum of the rates of the verdicts it took (the union
bound). :func:`false_alarm_budget` counts them from a run's report (every report states it);
:func:`configured_budget` from the tier table before running, and :func:`evidence_headroom`
says how many sequences can get evidence before a tier passes ``NIGHTLY_FALSE_ALARM``.
``docs/parity-tiers.md`` has the families and what their levels cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unirep_port.parity.tiers import Tier, current

# How often a nightly may fail a faithful port by chance and still be believed: about once in
# three years of nights (a false FAIL costs a person's morning; a gate that cries wolf monthly
# teaches people to rerun it instead of reading it).
NIGHTLY_FALSE_ALARM = 1e-3
# Statistical verdicts of one sequence over its triage (each at ALPHA_SEQUENCE): the
# teacher-forced step check of TF and of the port (stepwise), the hidden-state attribution
# (compare, conditions 3 and 4), the logits' bound (compare.assess) and the three reps' bounds.
EVIDENCE_VERDICTS = 7
# Judgements of a faithful port that leave no section in the report, each at ALPHA_SEQUENCE +
# ALPHA_BULK (the judge's per-place bound and bulk test), counted by hand from the tests that run
# in both tiers: test_porting_generic's unmarked tests (the outside model, the frozen constant,
# the custom oracle and its pytree inputs, the TF-twin-only op, the automatic oracle and the TF
# twin, the unfused batch norm, assert_port's page: 9), test_porting_guide's route (1) and
# test_porting_unirep's compiled oracle (1).
UNREPORTED_JUDGEMENTS = 11
# Verdicts at ALPHA_SEQUENCE per regression sequence besides its evidence: test_parity_full's
# single-row accuracy check (full tier only, one per record of data/regressions.fasta).
REGRESSION_ACCURACY_CHECKS = 1
# Report sections of one run and the verdicts each takes (the tests that write them):
# test_realpanel per size (4 statistics x 2 witnesses sign tests, 4 "faithful candidate passes",
# and on 1900 the single-row path's sign test and its faithful candidate), test_oracle_jax per
# size (4 gated sign tests and the float64 bound), test_golden (drift alarm and port vs golden,
# per size), test_evotune_parity (gradients on 3 sizes, SGD on 2), test_porting_unirep (the
# automatic and the hand port, per size: 2 judgements).
PANEL_SIGN_TESTS, PANEL_FAITHFUL, SINGLE_ROW = 8, 4, 2
CROSSCHECK_SIGN_TESTS = 4
GOLDEN_ALARMS, EVOTUNE_VERDICTS, AUTO_PORT_SIZES = 6, 5, 3
# test_fastmode's certificate: the design step on each size, the downstream test on the 1900.
FAST_MODE_SIZES = 3
# test_porting_generic's LSTM and GRU kill table (both tiers): one control per model.
KILL_TABLE_CONTROLS = 2


def _can_reject(n: int, alpha: float) -> bool:
    """Can a sign test over at most ``n`` pairs ever reach level ``alpha``? Its smallest p-value
    is ``0.5 ** n`` (every pair worse); where that is ``alpha`` or more it never fails, by chance
    or otherwise, and takes nothing from the budget (nor has any power)."""
    return 0.5**n < alpha


def _faithful(row: dict) -> bool:
    """A kill-table row of a control or rewrite (older reports name no kind: a bug of None)."""
    return row.get("kind", "control" if row.get("bug") is None else "bug") != "bug"


def regression_records(tier: Tier) -> list[str]:
    """The ids of ``data/regressions.fasta``'s records, where ``tier`` runs them."""
    if not tier.regressions:
        return []
    path = Path(__file__).resolve().parent / "data" / "regressions.fasta"
    return [line[1:].split()[0] for line in path.read_text().splitlines() if line.startswith(">")]


@dataclass
class _Tally:
    """The statistical verdicts of one run's report sections, by family (see
    :func:`false_alarm_budget`)."""

    tier: Tier
    investigated: int = 0  # sequences that got evidence
    panel: list = field(default_factory=list)  # the level of each real-protein verdict
    crosscheck_tests: int = 0  # gated cross-check sign tests able to fail
    crosscheck_bounds: int = 0  # the cross-checks' float64 bounds
    alarms: int = 0
    evotune: int = 0
    judgements: int = UNREPORTED_JUDGEMENTS  # of faithful ports, by the kit's judge
    fast: list = field(default_factory=list)  # the level of each fast-mode certificate test

    def add(self, name: str, sec: dict) -> None:
        self.investigated += len(sec.get("conditioning") or {})
        self._panel(sec)
        if name.startswith("compiled oracle cross-check"):
            n = self.tier.oracle_crosscheck.get(int(name.rsplit(" ", 1)[1]), 0)
            if _can_reject(n, self.tier.bulk_level()):
                self.crosscheck_tests += sum(1 for r in sec.get("rows", []) if r.get("gated"))
            self.crosscheck_bounds += 1
        self.alarms += name.startswith(("drift alarm", "port vs golden"))
        self.evotune += name.startswith("evotune_")
        if name.startswith("porting kit: automatic port"):
            self.judgements += 2  # the automatic port and the hand port
        if name.startswith("porting kit: generic judge (kill rate"):
            self.judgements += sum(1 for r in sec.get("rows", []) if _faithful(r))
        if name.startswith("porting kit: false alarms"):  # fails on too many: any is a bound
            self.judgements += int(sec.get("runs", 0))
        if name == "fast mode certificate":
            self._fast(sec)

    def _panel(self, sec: dict) -> None:
        levels = [
            t.get("alpha", self.tier.bulk_level()) for t in (sec.get("sign_tests") or {}).values()
        ]
        single = sec.get("single_row")
        if isinstance(single, dict):  # its gate and its faithful candidate
            levels += [single.get("alpha", self.tier.bulk_level())] * SINGLE_ROW
        if levels:  # one "faithful candidate passes" per statistic, at the section's level
            checks = (sec.get("power_checks") or {}).values()
            levels += [max(levels)] * sum(1 for v in checks if isinstance(v, dict))
        self.panel += levels

    def _fast(self, sec: dict) -> None:
        """The design step's bulk tests (``h`` and ``c`` per size) and the downstream paired
        test (accuracy and Spearman), each at its recorded level."""
        for step in (sec.get("design_step") or {}).values():
            self.fast += [step[k]["alpha"] for k in ("h", "c") if isinstance(step.get(k), dict)]
        paired = (sec.get("downstream") or {}).get("paired")
        if isinstance(paired, dict):
            self.fast += [paired["alpha"]] * 2

    def rows(self) -> list[dict]:
        from unirep_port.parity import drift

        a_seq, level = drift.ALPHA_SEQUENCE, self.tier.bulk_level()
        regressions = REGRESSION_ACCURACY_CHECKS * len(regression_records(self.tier))
        cross = self.crosscheck_tests * level + self.crosscheck_bounds * a_seq
        return [
            _row(
                "evidence of sequences over their triage",
                self.investigated * EVIDENCE_VERDICTS,
                a_seq,
            ),
            _row(
                "real-protein sign tests and power checks",
                len(self.panel),
                max(self.panel, default=level),
                sum(self.panel),
            ),
            _row(
                "compiled-oracle cross-checks",
                self.crosscheck_tests + self.crosscheck_bounds,
                level,
                cross,
            ),
            _row("golden drift alarms", self.alarms, drift.ALPHA_ALARM),
            _row(
                "evotune verdicts and regression accuracy checks", self.evotune + regressions, a_seq
            ),
            _row(
                "fast-mode certificate (design step, downstream scores)",
                len(self.fast),
                max(self.fast, default=drift.ALPHA_BULK),
                sum(self.fast),
            ),
            _row(
                "judgements of faithful ports (porting kit)",
                self.judgements,
                a_seq + drift.ALPHA_BULK,
            ),
        ]


def _row(family: str, verdicts: int, alpha: float, probability: float | None = None) -> dict:
    p = verdicts * alpha if probability is None else probability
    return {"family": family, "verdicts": verdicts, "alpha": alpha, "probability": p}


def false_alarm_budget(report: dict, tier: Tier | None = None) -> dict:
    """How likely this run was to fail a faithful port by chance: the union bound over every
    statistical verdict it took, each at its stated false-alarm rate (``drift``'s alphas; the
    panels' sign tests at their recorded level).

    ``report`` is a report's JSON (``Report.to_dict``), plus ``investigated_elsewhere``: the
    sequences that got evidence in checks whose results are not in it (the random examples and
    regressions); ``tier`` the tier that ran (default :func:`current`). Families: the evidence of
    each sequence over its triage (``EVIDENCE_VERDICTS`` at ``ALPHA_SEQUENCE``); each real-protein
    sign test and each "faithful candidate passes" power check (their level); each compiled-oracle
    cross-check (its gated sign tests, none where its panel is too small to ever fail one, and its
    float64 bound); each golden drift alarm (``ALPHA_ALARM``, the whole panel); each evotune
    verdict (``ALPHA_SEQUENCE``); each judgement of a faithful port by the porting kit's judge
    (``ALPHA_SEQUENCE + ALPHA_BULK``: the automatic and hand ports, the kill tables' controls and
    rewrites, the kit's false-alarm study, ``UNREPORTED_JUDGEMENTS``).

    The bound holds whatever the dependence between verdicts. Each alpha is itself an upper
    bound (the drifts are lighter-tailed than the Student-t model, a port more accurate than a
    witness is farther from a sign test's null), so the real rate is lower. One assumption: a
    sequence's evidence is counted only where the fixed triage tolerance sent it there, at its
    verdicts' stated rates (the triage looks at TF against the port, the verdicts at each against
    float64). The fast-mode certificate's design step (``bulk_test`` on ``h`` and ``c`` per
    size) and downstream paired test (accuracy, Spearman) count at their recorded levels. Not
    counted: the portability settings (bitwise or fixed criteria), the certificate's prediction
    rank check (fast against highest reps must rank alike more than two half-trained highest-rep
    top models do: no stated rate), ``weights validate`` on the original weights, and a power
    check's "1.79x candidate fails" (it fails on a panel too small to catch that candidate,
    whatever the port; ``realpanel`` states the counts it needs).
    """
    tally = _Tally(tier or current(), investigated=int(report.get("investigated_elsewhere", 0)))
    tally.investigated += sum(len(r.get("conditioning") or {}) for r in report.get("parity", []))
    for name in report.get("sections", []):
        tally.add(name, report.get(name) or {})
    rows = tally.rows()
    total = sum(r["probability"] for r in rows)
    return {
        "ok": True,
        "summary": (
            f"a faithful port fails this run by chance with probability at most {total:.2g} "
            f"(union bound over {sum(r['verdicts'] for r in rows)} statistical verdicts; "
            f"{tally.investigated} sequences got evidence); a nightly can live with "
            f"{NIGHTLY_FALSE_ALARM:g}: {'within' if total <= NIGHTLY_FALSE_ALARM else 'ABOVE'}"
        ),
        "total": total,
        "limit": NIGHTLY_FALSE_ALARM,
        "within_limit": total <= NIGHTLY_FALSE_ALARM,
        "rows": rows,
    }


def configured_budget(tier: Tier, investigated: int) -> dict:
    """The budget of a run of ``tier`` in which ``investigated`` sequences get evidence, from the
    tier table and the sections its tests write (the constants above), before running it.

    Everything but the evidence is fixed by the tier: which tests run and on how many proteins.
    Which sequences pass the fixed triage tolerance and get evidence depends on the CPU and the
    examples drawn, so it is an argument: :func:`evidence_headroom` says how many the tier can
    take. The same counting rule as :func:`false_alarm_budget`, applied to the sections a run
    of ``tier`` writes.
    """
    from unirep_port.parity import drift

    level = {"alpha": tier.bulk_level()}
    sections: dict[str, dict] = {}
    for size in tier.real_panel_n:
        sections[f"real proteins {size}"] = {
            "sign_tests": {i: level for i in range(PANEL_SIGN_TESTS)},
            "power_checks": {i: {} for i in range(PANEL_FAITHFUL)},
            "single_row": level if size == 1900 else None,
        }
    for size in tier.oracle_crosscheck:
        rows = [{"gated": True}] * CROSSCHECK_SIGN_TESTS
        sections[f"compiled oracle cross-check {size}"] = {"rows": rows}
    for i in range(GOLDEN_ALARMS):
        sections[f"drift alarm {i}"] = {}
    for i in range(EVOTUNE_VERDICTS):
        sections[f"evotune_{i}"] = {}
    for i in range(AUTO_PORT_SIZES):
        sections[f"porting kit: automatic port {i}"] = {}
    step = {"h": {"alpha": drift.ALPHA_BULK}, "c": {"alpha": drift.ALPHA_BULK}}
    sections["fast mode certificate"] = {
        "design_step": {i: step for i in range(FAST_MODE_SIZES)},
        "downstream": {"paired": {"alpha": drift.ALPHA_BULK}},
    }
    sections["porting kit: generic judge (kill rate, LSTM and GRU)"] = {
        "rows": [{"kind": "control"}] * KILL_TABLE_CONTROLS
    }
    report = {"investigated_elsewhere": investigated, "sections": list(sections), **sections}
    return false_alarm_budget(report, tier)


def evidence_headroom(tier: Tier) -> int:
    """How many sequences a run of ``tier`` can give evidence to and stay within the limit."""
    from unirep_port.parity import drift

    fixed = configured_budget(tier, 0)["total"]
    per_sequence = EVIDENCE_VERDICTS * drift.ALPHA_SEQUENCE
    return max(int((NIGHTLY_FALSE_ALARM - fixed) / per_sequence), -1)
