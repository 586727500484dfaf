"""What a hand port buys over the automatic one: hand port vs automatic port vs TF, one run.

For each size (1900, 256, 64) and two seeded workloads (``same``: 8 sequences of 200 residues;
``mixed``: 8 sequences of 30-238 residues), three implementations run side by side in the same
process: ``jax-port`` (``jax_port.get_reps``), ``jax-auto`` (``porting.unirep``, the reference
graph converted by tf2jax) and ``tf-batched`` (``Babbler.run_batch``). Recorded per cell:
``prepare_s`` (model build; for ``jax-auto`` the graph conversion), ``first_s`` (first call,
compilation included), ``warm_s`` (median of the warm rounds, interleaved across the three), the
medians of the per-round ratios to the hand port and to TF, and the largest |h_avg| difference
from TF.

Usage: ``python -m unirep_port.benchmarks.auto_vs_hand [--rounds 3] [--out PATH]``; writes
``benchmarks/results/auto-vs-hand.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np

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


def run(sizes=SIZES, rounds: int = 3, seed: int = 0) -> list[dict]:
    """One record per (size, workload, impl); see the module docstring for the fields.

    Warm rounds are interleaved (round r calls every implementation once, in turn), so a load
    change on a shared machine hits all three alike; ``warm_vs_hand`` and
    ``warm_speedup_vs_tf`` are medians of the per-round ratios.
    """
    from unirep_port.jax_port import compile_cache

    with compile_cache.executables_in(None):  # the hand port's first call compiles (first_s)
        return _cells(sizes, rounds, seed)


def _cells(sizes, rounds: int, seed: int) -> list[dict]:
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
            first, outs = {}, {}
            for impl, (a, _) in adapters.items():
                first[impl], out = harness.timed(lambda a=a, s=seqs: a.run(s))
                outs[impl] = np.asarray(out[0])
            warm: dict[str, list[float]] = {impl: [] for impl in IMPLS}
            for _ in range(rounds):
                for impl, (a, _) in adapters.items():
                    warm[impl].append(harness.timed(lambda a=a, s=seqs: a.run(s))[0])
            for impl, (_, prep_s) in adapters.items():
                w = np.asarray(warm[impl])
                records.append(
                    {
                        "size": size,
                        "workload": wname,
                        "impl": impl,
                        "n_seqs": len(seqs),
                        "residues": sum(map(len, seqs)),
                        "prepare_s": prep_s,
                        "first_s": first[impl],
                        "warm_s": float(np.median(w)),
                        "warm_rounds": w.tolist(),
                        "warm_vs_hand": float(np.median(w / np.asarray(warm["jax-port"]))),
                        "warm_speedup_vs_tf": float(np.median(np.asarray(warm["tf-batched"]) / w)),
                        "max_abs_h_avg_vs_tf": float(np.abs(outs[impl] - outs["tf-batched"]).max()),
                    }
                )
            by = {r["impl"]: r for r in records[-len(IMPLS) :]}
            print(
                f"{size:>5} {wname:>5}: "
                + "  ".join(
                    f"{i} first {r['first_s']:.2f}s warm {r['warm_s']:.3f}s "
                    f"(x{r['warm_vs_hand']:.2f} hand)"
                    for i, r in by.items()
                ),
                flush=True,
            )
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="warm rounds per cell")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    records = run(tuple(args.sizes), args.rounds)
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    print(f"wrote {harness.write_results(records, 'cpu', args.out, method=method)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
