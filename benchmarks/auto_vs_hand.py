"""What a hand port buys over the automatic one: hand port vs automatic port vs TF, one run.

For each size (1900, 256, 64) and two seeded workloads (``same``: 8 sequences of 200 residues;
``mixed``: 8 sequences of 30-238 residues), three implementations run side by side in the same
process: ``jax-port`` (``jax_port.get_reps``), ``jax-auto`` (``porting.unirep``, the reference
graph converted by tf2jax) and ``tf-batched`` (``Babbler.run_batch``). Recorded per cell:
``prepare_s`` (model build; for ``jax-auto`` the graph conversion), ``first_s`` (first call,
compilation included), ``warm_s`` (median of the warm rounds), and the largest |h_avg|
difference from TF. Ratios to TF and to the hand port are computed from the same run.

Usage: ``python -m unirep_port.benchmarks.auto_vs_hand [--rounds 2] [--out PATH]``; writes
``benchmarks/results/auto-vs-hand.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.benchmarks import harness
from unirep_port.benchmarks.adapters import make_adapter
from unirep_port.benchmarks.workloads import random_seqs

IMPLS = ("jax-port", "jax-auto", "tf-batched")
SIZES = (1900, 256, 64)
OUT = os.path.join(harness.RESULTS_DIR, "auto-vs-hand.json")


def workloads(seed: int = 0) -> dict[str, list[str]]:
    """``same``: 8 x 200 residues; ``mixed``: 8 lengths drawn in 30..238 (seeded)."""
    rng = random.Random(seed)
    mixed = [random_seqs(1, rng.randint(30, 238), seed + i)[0] for i in range(8)]
    return {"same": random_seqs(8, 200, seed), "mixed": mixed}


def run(sizes=SIZES, rounds: int = 2, seed: int = 0) -> list[dict]:
    """One record per (size, workload, impl); see the module docstring for the fields."""
    from unirep_port import weights

    records = []
    loads = workloads(seed)
    for size in sizes:
        params = weights.load_published(size)
        adapters = {}
        for impl in IMPLS:
            a = make_adapter(impl)
            t0 = time.perf_counter()
            a.prepare(size, params)
            adapters[impl] = (a, time.perf_counter() - t0)
        for wname, seqs in loads.items():
            outs = {}
            for impl, (a, prep_s) in adapters.items():
                timing = harness.time_calls(lambda a=a, s=seqs: a.run(s), rounds)
                outs[impl] = np.asarray(a.run(seqs)[0])
                records.append(
                    {
                        "size": size,
                        "workload": wname,
                        "impl": impl,
                        "n_seqs": len(seqs),
                        "residues": sum(map(len, seqs)),
                        "prepare_s": prep_s,
                        "first_s": timing.compile_s,
                        "warm_s": timing.median,
                        "warm_rounds": timing.warm,
                    }
                )
            for rec in records[-len(IMPLS) :]:
                rec["max_abs_h_avg_vs_tf"] = float(
                    np.abs(outs[rec["impl"]] - outs["tf-batched"]).max()
                )
            by = {r["impl"]: r for r in records[-len(IMPLS) :]}
            for rec in by.values():
                rec["warm_speedup_vs_tf"] = by["tf-batched"]["warm_s"] / rec["warm_s"]
                rec["warm_vs_hand"] = rec["warm_s"] / by["jax-port"]["warm_s"]
            print(
                f"{size:>5} {wname:>5}: "
                + "  ".join(
                    f"{i} first {r['first_s']:.2f}s warm {r['warm_s']:.3f}s" for i, r in by.items()
                ),
                flush=True,
            )
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="warm rounds per cell")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    records = run(tuple(args.sizes), args.rounds)
    with atomic_file(args.out, mode=0o644) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "machine": harness.machine_info(),
                "method": __doc__.split("\n\n")[1].replace("\n", " "),
                "records": records,
            },
            fh,
            indent=1,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
