"""Run the benchmark matrix without pytest: ``python -m unirep_port.benchmarks.run --device cpu|gpu --quick``.

Writes the same JSON as the pytest suite (``benchmarks/results/<machine-id>-<device>.json``
unless ``-o``). Meant for the GPU machine (JAX with CUDA, torch, no TensorFlow): TF cells are
recorded as skipped there, and the 1900 model uses random weights of the true shapes unless
``--weights published`` (the 256/64 models use the published weights when they can be loaded).
"""

from __future__ import annotations

import argparse
import sys
import time

from unirep_port.benchmarks import harness, matrix
from unirep_port.benchmarks.adapters import IMPLS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m unirep_port.benchmarks.run", description=__doc__.split("\n")[0]
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--quick", action="store_true", help="small workloads, 2 warm rounds")
    p.add_argument("--sizes", type=int, nargs="+", default=list(matrix.SIZES))
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    p.add_argument("--workloads", nargs="+", default=None, help="e.g. paper-10 grid-b8-l64")
    p.add_argument("--rounds", type=int, default=None, help="override warm rounds per cell")
    p.add_argument(
        "--weights",
        choices=("auto", "published", "random"),
        default=None,
        help="weights source (default: auto; random for 1900 on gpu)",
    )
    p.add_argument("--max-tokens", type=int, default=None, help="skip larger workloads")
    p.add_argument("-o", "--out", default=None, help="results JSON path")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def source(size: int) -> str:
        if args.weights:
            return args.weights
        return "random" if args.device == "gpu" and size == 1900 else "auto"

    runner = matrix.Runner(args.device, source, args.max_tokens)
    records = []
    for impl, size, name in matrix.cells(args.quick, args.sizes, args.impls, args.workloads):
        t0 = time.perf_counter()
        rec = runner.run_cell(impl, size, name, rounds=args.rounds, quick=args.quick)
        records.append(rec)
        if rec["skipped"]:
            msg = f"skipped: {rec['skipped']}"
        else:
            msg = (
                f"{rec['tokens_per_s']:10.0f} tok/s  warm {rec['warm_s']['median']:.4f}s  "
                f"compile {rec['compile_s']:.2f}s  roofline {rec['roofline_fraction']:.1%}"
            )
        print(
            f"{impl:11s} {size:5d} {name:15s} {msg}  [{time.perf_counter() - t0:.1f}s]", flush=True
        )
        # Rewrite after every cell so a killed run keeps what it measured.
        path = harness.write_results(records, args.device, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
