"""The float64 oracle's speed, NumPy loops vs compiled (``oracle_jax``), side by side in one run.

``python -m unirep_port.parity.oracle_bench [-o parity_tests/results/oracle-speed.json]``

Per size (published weights), three workloads of the parity suite:

* ``real panel drifts``: ``realpanel.drifts_from_float64`` on real proteins (float64 oracle plus
  5 nudged float32 members per protein; the bulk sign tests' input);
* ``ensemble``: ``oracle.float32_ensemble`` of one 500-residue sequence, 8 members (the
  attribution evidence for one sequence over tolerance);
* ``states``: ``oracle.oracle_states`` of that sequence (the teacher-forced step check's input).

Each is timed NumPy, then compiled on its first call (compile included), then compiled warm, in
that order within one process; ratios are NumPy time over compiled time. Outputs are checked to
agree (float64 to 1e-9; the members' drift medians within a factor 2) so a fast wrong engine
cannot report a speed-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

PANEL_N = {1900: 16, 256: 60, 64: 120}
ENSEMBLE_LEN = 500


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_size(size: int) -> list[dict]:
    from unirep_port import weights
    from unirep_port.parity import oracle, oracle_jax
    from unirep_port.parity.panel import random_protein
    from unirep_port.parity.realpanel import drifts_from_float64, real_panel

    params = weights.load_published(size)
    seqs = [s for _, s in real_panel(PANEL_N[size])]
    one = random_protein(ENSEMBLE_LEN, random.Random(size))
    tokens = sum(len(s) + 1 for s in seqs)
    rows = []

    def row(name, what, np_fn, jx_fn, agree):
        a, t_np = _timed(np_fn)
        b, t_first = _timed(jx_fn)
        b, t_warm = _timed(jx_fn)
        rows.append(
            {
                "size": size,
                "workload": name,
                "what": what,
                "numpy_s": round(t_np, 3),
                "compiled_first_s": round(t_first, 3),
                "compiled_warm_s": round(t_warm, 3),
                "speedup_warm": round(t_np / t_warm, 2),
                "speedup_first": round(t_np / t_first, 2),
                "agree": bool(agree(a, b)),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    def drifts(backend):
        return drifts_from_float64(params, size, seqs, {}, members=5, backend=backend)

    def med(d):
        return np.median([d[f"member{k}"]["hs"] for k in range(5)])

    row(
        "real panel drifts",
        f"{len(seqs)} real proteins, {tokens} tokens, float64 + 5 members",
        lambda: drifts("numpy"),
        lambda: drifts("jax"),
        lambda a, b: 0.5 < med(a) / med(b) < 2,
    )
    row(
        "ensemble",
        f"one {ENSEMBLE_LEN}-residue sequence, 8 float32 members",
        lambda: oracle.float32_ensemble(params, one, size, backend="numpy"),
        lambda: oracle_jax.float32_ensemble(params, one, size),
        lambda a, b: a.hs[0].shape == b.hs[0].shape,
    )
    row(
        "states",
        f"one {ENSEMBLE_LEN}-residue sequence, float64 states of every layer",
        lambda: oracle._oracle_states(params, one, size),
        lambda: oracle_jax.oracle_states(params, one, size),
        lambda a, b: max(np.abs(x - y).max() for x, y in zip(a, b)) < 1e-9,
    )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default=None, help="JSON file (default: print only)")
    p.add_argument("--sizes", nargs="+", type=int, default=[1900, 256, 64])
    args = p.parse_args(argv)
    import jax

    rows = [r for size in args.sizes for r in bench_size(size)]
    from unirep_port.machine import cpu_model

    cpu = cpu_model()
    out = {
        "what": __doc__.splitlines()[0],
        "machine": {"cpu": cpu, "cores": len(__import__("os").sched_getaffinity(0))},
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpy": np.__version__,
        },  # fmt: skip
        "rows": rows,
        "ok": all(r["agree"] for r in rows),
    }
    text = json.dumps(out, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
