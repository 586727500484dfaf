"""Real proteins, judged as the witnesses are judged: per sequence and over the panel.

``parity_tests/data/real_proteins.fasta``: 400 natural proteins (57-991 aa, ~300 species, many
families) from a UniProtKB sample; provenance and licence in ``parity_tests/data/README.md``.

Per sequence, every protein goes through the ordinary verdict (``engine.run_parity``: TF vs the
port with the derived attribution of ``compare``). That catches any error a single sequence can
show. What one sequence cannot show is a port that is *a bit less accurate everywhere* (the old
single-row kernel was 1.8x the witnesses' drift from float64, invisible on any one sequence at a
false-alarm rate worth having, and a heavy-tail outlier of a faithful port looks the same). So
over the panel, the port's drift from the float64 oracle is compared with the drift of the TF
reference and of a float32 ensemble (``BULK_MEMBERS`` members, nudged by one ulp after every
step, as ``oracle.float32_ensemble``) on the same sequences:

* the distributions of per-sequence drift (median, 99th percentile, max) are reported for each;
* the gate is a paired one-sided sign test (``drift.sign_test``): the port fails when it is
  farther from float64 than TF -- or than the median ensemble member -- on significantly more
  than half of the sequences (at the tier's level, ``tiers.Tier.bulk_level``: ``drift.ALPHA_BULK``
  in the full tier, ``tiers.GATE_ALPHA_BULK`` on the gate's smaller panels), for the per-position
  mean drift of ``hs`` and for each rep;
* the test proves its own power on every run: one further ensemble member, held out, passes the
  same test as a candidate, and the same member with its drift scaled by 1.79 (the old kernel's
  measured ratio) must fail it.

For the 1900 model the port is also run one sequence at a time on the same proteins, the path
whose kernel was once less accurate; comparing it with the batched path on the same proteins says
whether a batched-path outlier is the kernel or luck.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from unirep_port.fasta import read_fasta
from unirep_port.parity import oracle
from unirep_port.parity.compare import Outputs
from unirep_port.parity.exact import STATS

REAL_PROTEINS = Path(__file__).resolve().parent / "data" / "real_proteins.fasta"
BULK_MEMBERS = 4  # ensemble members per sequence (+1 held out for the power check)
OLD_KERNEL_RATIO = 1.79  # the single-row (n_in, n_out) kernel's measured drift over the witnesses'


def real_panel(n: int | None = None) -> list[tuple[str, str]]:
    """``(accession, sequence)`` of the real proteins; ``n`` spread evenly over the length order."""
    recs = list(read_fasta(REAL_PROTEINS))
    if n is None or n >= len(recs):
        return recs
    by_len = sorted(recs, key=lambda r: (len(r[1]), r[0]))
    idx = np.linspace(0, len(by_len) - 1, n).round().astype(int)
    return [by_len[i] for i in idx]


def drifts_from_float64(
    params: Mapping[str, np.ndarray],
    size: int,
    seqs: Sequence[str],
    implementations: Mapping[str, Outputs],
    members: int = BULK_MEMBERS + 1,
    batch_size: int = 32,
    seed: int = 0,
    backend: str | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-sequence distance from the float64 oracle of each implementation and ensemble member.

    Returns ``{name: {stat: (n,)}}`` for each of ``implementations`` and for ``member<k>``,
    ``k < members``; the stats are :data:`exact.STATS`, measured as :func:`exact.put_drift`
    says. The oracle and the members run batched over sequences, so nothing of size
    (sequences x positions x units) is kept. ``backend``: the compiled oracle (``oracle_jax``,
    default) or the NumPy loops (``"numpy"``); :func:`oracle.drifts_from_float64` runs them.
    """
    return oracle.drifts_from_float64(
        params, size, seqs, implementations, members, batch_size, seed, backend
    )


def bulk_verdict(
    drifts: dict[str, dict[str, np.ndarray]], port: str = "jax", alpha: float | None = None
) -> dict:
    """The panel-level gate on :func:`drifts_from_float64`'s result (see the module docstring).

    The last member is held out as a faithful candidate for the size and power checks; the others
    form the ensemble whose per-sequence median is the second witness. ``alpha``: the level of
    every sign test here (default: the current tier's, ``tiers.current().bulk_level()``).
    """
    from functools import partial

    from unirep_port.parity import tiers
    from unirep_port.parity.drift import distribution, sign_test

    sign_test = partial(sign_test, alpha=tiers.current().bulk_level() if alpha is None else alpha)

    members = sorted(k for k in drifts if k.startswith("member"))
    held_out, ensemble = members[-1], members[:-1]
    tests, checks, dists = {}, {}, {}
    for stat in STATS:
        median_member = np.median([drifts[k][stat] for k in ensemble], axis=0)
        witnesses = {"tf": drifts["tf"][stat], "median member": median_member}
        for wname, w in witnesses.items():
            tests[f"{stat} vs {wname}"] = sign_test(drifts[port][stat], w)
        held = drifts[held_out][stat]
        checks[stat] = {
            "faithful candidate passes": sign_test(held, median_member)["ok"],
            f"{OLD_KERNEL_RATIO}x candidate fails": not sign_test(
                OLD_KERNEL_RATIO * held, median_member
            )["ok"],
        }
        dists[stat] = {
            name: distribution(drifts[name][stat]) for name in [port, "tf", *ensemble] if name
        }
    return {
        "ok": all(t["ok"] for t in tests.values()),
        "power_ok": all(all(v.values()) for v in checks.values()),
        "sign_tests": tests,
        "power_checks": checks,
        "distributions": dists,
    }


def single_row_rows(n: int, every: int = 1) -> list[int]:
    """The panel rows the single-row path runs on: every ``every``-th of the length-ordered panel
    (``real_panel`` spreads it evenly over lengths, so any stride keeps the spread)."""
    return list(range(0, n, max(1, every)))


def single_row_outputs(
    params, size: int, seqs: Sequence[str], batched: Outputs, rows: Sequence[int] | None = None
) -> Outputs:
    """The port's per-position outputs run one sequence at a time (``batch_size=1``).

    Only ``hs`` (and the reps made from it) are that path's own; ``c_final`` is copied from
    ``batched``, so only ``hs`` is judged for this path. ``rows``: the sequences to run one at a
    time (default all); the others keep ``batched``'s outputs and are left out of
    :func:`single_row_verdict` (pass it the same ``rows``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from unirep_port import jax_port

    rows = list(range(len(seqs))) if rows is None else list(rows)
    hs = [np.asarray(h) for h in batched.hs]
    model = jax_port.model.as_model(params, size)  # prepared once, shared by both threads
    # Two sequences at a time, one per thread: a one-row step is bound by memory traffic and
    # two of them overlap (1.29x on the 1900 model, 2 cores); each row still runs alone in its
    # own one-row program, so its numbers are those of a sequential run (the executable and its
    # inputs are the same).
    by_len = sorted(rows, key=lambda i: -len(seqs[i]))
    parts = [p for p in (by_len[0::2], by_len[1::2]) if p]

    def run(part: list[int]) -> list:
        return jax_port.get_hidden_states([seqs[i] for i in part], model, size, batch_size=1)

    with ThreadPoolExecutor(max_workers=2) as pool:
        ran = list(pool.map(run, parts))
    for part, got in zip(parts, ran):
        for i, h in zip(part, got):
            hs[i] = np.asarray(h)
    h_avg = np.stack([h.mean(axis=0) for h in hs])
    h_final = np.stack([h[-1] for h in hs])
    return Outputs(hs, [], h_avg, h_final, np.asarray(batched.c_final))


def single_row_verdict(
    drifts: dict,
    single: str = "jax_single_row",
    batched: str = "jax",
    rows: Sequence[int] | None = None,
    alpha: float | None = None,
) -> dict:
    """The single-row path against the median member (the gate), and against the batched path,
    on ``rows`` (the sequences :func:`single_row_outputs` ran one at a time; default all).

    The second test says whether the batched kernel is less accurate than the single-row one (a
    kernel effect) or not (then an outlier of the batched port is heavy-tail luck): it is
    reported both ways and gates nothing. The power check is the bulk verdict's, on these rows:
    the held-out member must pass and the same member scaled by :data:`OLD_KERNEL_RATIO` (the old
    single-row kernel's measured excess) must fail, so a subset too small to catch that kernel
    fails the gate instead of passing it. ``alpha`` as in :func:`bulk_verdict`.
    """
    from functools import partial

    from unirep_port.parity import tiers
    from unirep_port.parity.drift import distribution, sign_test

    sign_test = partial(sign_test, alpha=tiers.current().bulk_level() if alpha is None else alpha)

    n = len(drifts[single]["hs"])
    r = np.arange(n) if rows is None else np.asarray(list(rows))
    members = sorted(k for k in drifts if k.startswith("member"))
    held_out, ensemble = members[-1], members[:-1]
    median_member = np.median([drifts[k]["hs"][r] for k in ensemble], axis=0)
    gate = sign_test(drifts[single]["hs"][r], median_member)
    held = drifts[held_out]["hs"][r]
    power = {
        "faithful candidate passes": sign_test(held, median_member)["ok"],
        f"{OLD_KERNEL_RATIO}x candidate fails": not sign_test(
            OLD_KERNEL_RATIO * held, median_member
        )["ok"],
    }
    return {
        **gate,
        "rows": len(r),
        "power_checks": power,
        "power_ok": all(power.values()),
        "batched_vs_single_row": sign_test(drifts[batched]["hs"][r], drifts[single]["hs"][r]),
        "single_row_vs_batched": sign_test(drifts[single]["hs"][r], drifts[batched]["hs"][r]),
        "distribution": distribution(drifts[single]["hs"][r]),
    }
