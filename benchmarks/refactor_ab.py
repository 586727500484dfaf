"""A refactor's speed check: ``get_reps`` of two git revisions, side by side in one run.

``python -m unirep_port.benchmarks.refactor_ab --before REV [--after REV]`` installs each
revision's package (non-editable, ``git archive`` of the commit, no dependencies) into a folder of
its own, then times ``jax_port.get_reps`` on the same seeded jobs in fresh processes that
alternate before / after for ``--rounds`` rounds: the first call of a process (weights loaded,
compiled) apart from its warm calls (median). ``--after`` left out: the working tree's installed
package (this process's ``unirep_port``). Both sides get the same sequences, written once to a
file; each side's reps are kept so the run also says whether the bits changed and, where they
did, by how much (max abs difference per output). Each process starts from an empty cache
folder (its first call compiles) but the probe store is carried from one process to the next,
so a decision the engine times once per machine (the weights' layout at a batch) is the same on
both sides, as it is for a user's later processes (:func:`run_side`).

The verdict per cell is the median over rounds of ``before warm / after warm`` (above 1: the
after side is faster); the run's load averages are recorded, since two cores shared with other
work widen every ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port.benchmarks import harness
from unirep_port.benchmarks.workloads import make as make_workload

RESULT = Path(harness.RESULTS_DIR) / "revision-speed-and-bits.json"
REPO = Path(__file__).resolve().parent.parent
# (size, workload) cells: the small-jobs matrix's jobs (benchmarks.small_batch) on every size.
CELLS = [
    (s, w)
    for s in (64, 256, 1900)
    for w in ("grid-b1-l238", "grid-b8-l200", "grid-b64-l238", "uniform-100-50-500")
]

# Runs in the child under PYTHONPATH=<one side's install>: argv job.json out.npz.
CHILD = r"""
import json, sys, time
import numpy as np
from unirep_port import jax_port
job = json.load(open(sys.argv[1]))
seqs, size, warm = job["seqs"], job["size"], job["warm"]
t0 = time.perf_counter()
first = jax_port.get_reps(seqs, size=size)
first_s = time.perf_counter() - t0
times = []
for _ in range(warm):
    t0 = time.perf_counter()
    out = jax_port.get_reps(seqs, size=size)
    times.append(time.perf_counter() - t0)
np.savez(sys.argv[2], *out)
try:
    from unirep_port.jax_port.compile_cache import counts
    kept = counts().get("aot_stores")
except Exception:  # a revision without the counters
    kept = None
try:
    from unirep_port.jax_port.probes import timed_here
    probed = timed_here()[0]
except Exception:  # a revision without the probe store
    probed = None
print("AB " + json.dumps({"first_s": first_s, "warm_s": times, "file": jax_port.__file__,
                          "executables_stored": kept, "probes_timed": probed}))
"""


def install(rev: str, dest: Path) -> Path:
    """Install ``rev``'s package (no dependencies: the running env has them) under ``dest``."""
    src, site = dest / "src", dest / "site"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        check=True,
    )  # fmt: skip
    return site


def run_side(site: Path | None, job: Path, out: Path, probes: Path | None = None) -> dict:
    """One fresh process of one side on one cell: its first call and warm calls.

    The child runs ``get_reps`` as a library user gets it, executables kept on disk included
    (``jax_port.compile_cache.executables_dir``), in a cache folder of its own that starts
    empty, so its first call compiles; only the published weights are shared (linked), and,
    given ``probes``, the probe store: copied in before the child starts and back after it, so
    the first process to time a decision (the weights' layout at a batch) takes it for every
    later one of either side. Otherwise a decision near its margin could go one way in one
    process and the other way in the next, and the bits would differ by the two layouts'
    rounding, not by the change under test."""
    from unirep_port.jax_port import probes as probe_store
    from unirep_port.weights.published import cache_sharing_weights

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("UNIREP_PORT_NO_COMPILE_CACHE", None)  # the default path is what is measured
    if site is not None:
        env["PYTHONPATH"] = str(site)  # ahead of the env's editable install
    with tempfile.TemporaryDirectory(prefix="refactor-ab-cache-") as home:
        cache = cache_sharing_weights(home)
        env["UNIREP_PORT_CACHE"] = str(cache)
        store = cache / probe_store.LIBRARY_FILE  # where a library call keeps them
        if probes is not None and probes.is_file():
            shutil.copyfile(probes, store)
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(job), str(out)],
            env=env, capture_output=True, text=True, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        if probes is not None and not res.returncode and store.is_file():
            shutil.copyfile(store, probes)  # what it read, and what it timed
    if res.returncode:
        raise RuntimeError(f"{site or 'after'}: {res.stderr[-3000:]}")
    return json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("AB ")][-1][3:])


def compare_bits(a: Path, b: Path) -> dict:
    """Whether two runs' reps are the same bits, else the max abs difference per output."""
    x, y = np.load(a), np.load(b)
    keys = ("h_avg", "h_final", "c_final")
    same = all(np.array_equal(x[f"arr_{i}"], y[f"arr_{i}"]) for i in range(3))
    diff = {k: float(np.max(np.abs(x[f"arr_{i}"] - y[f"arr_{i}"]))) for i, k in enumerate(keys)}
    return {"bitwise_equal": same, "max_abs_diff": diff}


def run(before: str, after: str | None, cells, rounds: int, warm: int, work: Path) -> dict:
    sides = {"before": install(before, work / "before")}
    sides["after"] = install(after, work / "after") if after else None
    records, loads = [], [os.getloadavg()]
    for size, name in cells:
        job = work / f"{size}-{name}.json"
        job.write_text(
            json.dumps({"seqs": list(make_workload(name).seqs), "size": size, "warm": warm})
        )
        runs = {"before": [], "after": []}
        for r in range(rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                runs[side].append(
                    run_side(sides[side], job, work / f"{side}.npz", work / "probes.json")
                )
        loads.append(os.getloadavg())
        pairs = list(zip(runs["before"], runs["after"]))
        ratios = [float(np.median(b["warm_s"]) / np.median(a["warm_s"])) for b, a in pairs]
        rec = {
            "size": size,
            "workload": name,
            "before_over_after_warm": float(np.median(ratios)),
            "per_round": ratios,
            "first_call_before_over_after": float(
                np.median([b["first_s"] / a["first_s"] for b, a in pairs])
            ),
            **compare_bits(work / "before.npz", work / "after.npz"),
            "runs": runs,
        }
        records.append(rec)
        print(
            f"{size:>5} {name:<20} before/after warm {rec['before_over_after_warm']:.3f} "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}), first "
            f"{rec['first_call_before_over_after']:.2f}, bits equal {rec['bitwise_equal']}",
            flush=True,
        )
    return {
        "before": before,
        "after": after or "working tree",
        "load_avg": loads,
        "records": records,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare against")
    ap.add_argument("--after", help="git revision (default: the installed working tree)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1900])
    ap.add_argument(
        "--workloads",
        nargs="+",
        help="workloads to time on every size (benchmarks.workloads names, e.g. grid-b4-l238; "
        "default: the small-jobs matrix's four)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm", type=int, default=5, help="warm calls per process")
    ap.add_argument("-o", "--out", type=Path, default=RESULT)
    a = ap.parse_args(argv)
    if a.workloads:
        for w in a.workloads:
            make_workload(w, 0)  # an unknown name fails here, before anything is installed
        cells = [(s, w) for s in a.sizes for w in a.workloads]
    else:
        cells = [(s, w) for s, w in CELLS if s in a.sizes]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="refactor-ab-") as work:
        res = run(a.before, a.after, cells, a.rounds, a.warm, Path(work))
    res["wall_s"] = time.time() - t0
    path = harness.write_results(res.pop("records"), "cpu", str(a.out), method=res)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
