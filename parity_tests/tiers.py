"""The parity suite's two tiers: the gate (``tox -e parity``, every change) and the full tier
(``tox -e parity-full``, nightly). One table, so what the gate trims is visible in one place.

Both tiers run every kind of check (panels with the derived attribution, teacher-forced steps,
real proteins with the bulk sign tests and their power checks, goldens and the drift alarm,
planted port bugs, planted TF changes, the validate gates, evotune, downstream, the fast-mode
certificate, portability, the compiled-oracle cross-check). The gate runs each on smaller inputs:
fewer real proteins, fewer avGFP variants, fewer hypothesis examples, a shorter longest random
sequence for the 1900 model, one portability setting of each kind. Why that keeps its teeth
(``docs/tiers.md`` has the argument at length):

* A porting bug moves outputs by 1e-3 to 1e-1 on *every* sequence that exercises it, three or
  more orders of magnitude above float32 rounding; the planted bugs (``planted_bugs``,
  ``planted_tf``, the validate gates' bad conversions) are all caught at the gate's sizes, and
  the gate runs them.
* What only many sequences can show -- a port a little less accurate everywhere -- is the sign
  test's job, and its power is *measured* in every run: a held-out ensemble member must pass
  and the same member scaled by ``realpanel.OLD_KERNEL_RATIO`` must fail, on the gate's own
  panel. If the gate's panel ever became too small for that, the power check fails the gate.
* Length-dependent drift (the ill-conditioned stretches of long random sequences) is what the
  full tier's 1900 2,000-mer adds; in the gate the 64 and 256 models keep the 2,000-mer and the
  1900 model's real proteins reach 991 aa (its fixed panel stops at 500).

Select with the ``PARITY_TIER`` environment variable (``gate``, the default, or ``full``).

The random examples of both tiers (hypothesis' mixed batches) are drawn from one seed per run,
``$PARITY_SEED`` or else a fresh one (:func:`run_seed`); the report's ``random examples``
section states it, so a failing example is replayed with ``PARITY_SEED=<seed> tox -e
parity-full``. How often the whole full tier fails a faithful port by chance, and why:
:func:`false_alarm_budget`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field

TIER_ENV = "PARITY_TIER"
SEED_ENV = "PARITY_SEED"


@dataclass(frozen=True)
class Tier:
    name: str
    # realpanel: proteins per size (None: all 400), spread evenly over the length order
    real_panel_n: dict = field(default_factory=dict)
    # the 1900 real proteins the port's single-row path runs on: every n-th in length order
    single_row_every: int = 1
    # the fixed parity panel's longest random sequence, per size
    panel_max_length: dict = field(default_factory=dict)
    # hypothesis examples of mixed batches: (256 and 64, 1900)
    hypothesis_examples: tuple[int, int] = (6, 3)
    # avGFP variants of the downstream parity and the fast-mode certificate (shared reps)
    downstream_variants: int = 2000
    # the 1,999-mer regression on the port's single-row path (parity_tests/data/regressions)
    regressions: bool = True
    # portability: settings run besides the baseline (None: the whole default matrix), and the
    # settings that keep the 1900 model (None: as the matrix says)
    portability_only: tuple[str, ...] | None = None
    portability_1900_in: tuple[str, ...] | None = None
    # the live planted-bug runs' panel: longest random sequence (64 model)
    live_bug_max_length: int = 1000
    # the compiled oracle vs the NumPy oracle: sizes and sequences per size
    oracle_crosscheck: dict = field(default_factory=dict)
    # ``reps --impl auto``'s round trip through the CLI on the 1900 model too (the 1900 auto port
    # itself is judged through the library in both tiers; the CLI's plumbing is size-blind)
    auto_cli_1900: bool = True


TIERS = {
    "gate": Tier(
        name="gate",
        real_panel_n={1900: 32, 256: 80, 64: 160},
        single_row_every=2,
        panel_max_length={1900: 500, 256: 2000, 64: 2000},
        hypothesis_examples=(3, 1),
        downstream_variants=400,
        regressions=False,
        # one setting of each kind: run-to-run, thread count, TF's oneDNN ISA, XLA's ISA
        portability_only=("baseline-repeat", "threads-1", "onednn-avx2", "xla-avx2"),
        portability_1900_in=("baseline", "baseline-repeat"),
        live_bug_max_length=500,
        oracle_crosscheck={64: 12},
        auto_cli_1900=False,
    ),
    "full": Tier(
        name="full",
        real_panel_n={1900: 80, 256: None, 64: None},
        panel_max_length={1900: 2000, 256: 2000, 64: 2000},
        hypothesis_examples=(6, 3),
        downstream_variants=2000,
        regressions=True,
        portability_only=None,
        oracle_crosscheck={1900: 8, 256: 60, 64: 120},
    ),
}


def current() -> Tier:
    """The tier named by ``$PARITY_TIER`` (default ``gate``); an unknown name is an error."""
    name = os.environ.get(TIER_ENV) or "gate"
    if name not in TIERS:
        raise ValueError(f"{TIER_ENV}={name!r}: choose one of {', '.join(TIERS)}")
    return TIERS[name]


_SEED: list[int] = []  # this process's run seed, drawn once


def run_seed() -> int:
    """The seed of this run's random examples: ``$PARITY_SEED`` (an integer in [0, 2**32)) or,
    unset, one drawn from the OS once per process. A bad value is an error naming it."""
    if not _SEED:
        raw = os.environ.get(SEED_ENV, "").strip()
        if raw:
            try:
                value = int(raw, 0)
            except ValueError:
                raise ValueError(f"{SEED_ENV}={raw!r}: not an integer") from None
            if not 0 <= value < 2**32:
                raise ValueError(f"{SEED_ENV}={raw!r}: must lie in [0, 2**32)")
        else:
            value = secrets.randbits(32)
        _SEED.append(value)
    return _SEED[0]


def example_seed(label: str) -> int:
    """The seed of one test's examples, from the run seed and the test's ``label`` (each test
    draws its own examples; the same run seed draws the same ones again)."""
    digest = hashlib.sha256(f"{run_seed()}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def replay_command(tier: str | None = None) -> str:
    """The command that draws this run's examples again."""
    env = "parity-full" if (tier or current().name) == "full" else "parity"
    return f"{SEED_ENV}={run_seed()} python3 -m tox -e {env}"


# How often a nightly may fail a faithful port by chance and still be believed: about once in
# three years of nights (a false FAIL costs a person's morning; a gate that cries wolf monthly
# teaches people to rerun it instead of reading it).
NIGHTLY_FALSE_ALARM = 1e-3
# Statistical verdicts of one sequence over its triage (each at ALPHA_SEQUENCE): the
# teacher-forced step check of TF and of the port (stepwise), the hidden-state attribution
# (compare, conditions 3 and 4), the logits' bound (compare.assess) and the three reps' bounds.
EVIDENCE_VERDICTS = 7


def false_alarm_budget(report: dict) -> dict:
    """How likely this run was to fail a faithful port by chance: the union bound over every
    statistical verdict it took, each at its stated false-alarm rate (``drift``'s alphas).

    ``report`` is a report's JSON (``Report.to_dict``), plus ``investigated_elsewhere``: the
    sequences that got evidence in checks whose results are not in it (the random examples and
    regressions). Families: the evidence of each sequence over its triage (
    ``EVIDENCE_VERDICTS`` at ``ALPHA_SEQUENCE``), each gated sign test and each "faithful
    candidate passes" power check (``ALPHA_BULK``), each golden drift alarm (``ALPHA_ALARM``,
    the whole panel), each evotune and automatic-port verdict (``ALPHA_SEQUENCE``). The bound
    holds whatever the dependence between them; each alpha is itself an upper bound (the drifts
    are lighter-tailed than the Student-t model, and a port more accurate than a witness is
    farther from a sign test's null), so the real rate is lower. Not counted: the portability
    settings and the fast-mode certificate (bitwise or fixed criteria, or a separate verdict),
    the porting kit's generic-judge controls and ``weights validate`` on the original weights.
    """
    from unirep_port.parity import drift

    investigated = int(report.get("investigated_elsewhere", 0))
    investigated += sum(len(r.get("conditioning") or {}) for r in report.get("parity", []))
    bulk = alarm = per_seq = 0
    for name in report.get("sections", []):
        sec = report.get(name) or {}
        investigated += len(sec.get("conditioning") or {})
        bulk += len(sec.get("sign_tests") or {})
        bulk += sum(
            1 for v in (sec.get("power_checks") or {}).values() if isinstance(v, dict)
        )  # one "faithful candidate passes" per statistic
        single = sec.get("single_row")
        if isinstance(single, dict):
            bulk += 2  # its gate and its faithful candidate
        if name.startswith("compiled oracle cross-check"):
            bulk += sum(1 for r in sec.get("rows", []) if r.get("gated"))
        if name.startswith(("drift alarm", "port vs golden")):
            alarm += 1
        if name.startswith(("evotune_", "porting kit: automatic port")):
            per_seq += 1
    rows = [
        {
            "family": "evidence of sequences over their triage",
            "verdicts": investigated * EVIDENCE_VERDICTS,
            "alpha": drift.ALPHA_SEQUENCE,
        },
        {"family": "sign tests and power checks", "verdicts": bulk, "alpha": drift.ALPHA_BULK},
        {"family": "golden drift alarms", "verdicts": alarm, "alpha": drift.ALPHA_ALARM},
        {"family": "evotune, automatic port", "verdicts": per_seq, "alpha": drift.ALPHA_SEQUENCE},
    ]
    for r in rows:
        r["probability"] = r["verdicts"] * r["alpha"]
    total = sum(r["probability"] for r in rows)
    return {
        "ok": True,
        "summary": (
            f"a faithful port fails this run by chance with probability at most {total:.2g} "
            f"(union bound over {sum(r['verdicts'] for r in rows)} statistical verdicts; "
            f"{investigated} sequences got evidence); a nightly can live with "
            f"{NIGHTLY_FALSE_ALARM:g}: {'within' if total <= NIGHTLY_FALSE_ALARM else 'ABOVE'}"
        ),
        "total": total,
        "limit": NIGHTLY_FALSE_ALARM,
        "within_limit": total <= NIGHTLY_FALSE_ALARM,
        "rows": rows,
    }
