"""Where a fresh ``unirep-port reps`` process spends its time, by phase, with a cProfile.

:func:`profile_reps` runs ``unirep-port reps ARGS`` in a new Python process: it times the
import of the package and the port without the profiler, then runs the command under cProfile
(the ``.prof`` is written for snakeviz / pstats) and splits the wall time into phases: process
start and exit (the interpreter's start-up, and its teardown where the run does not end as the
console script does), imports, weight load and preparation (their small compiles included),
FASTA parsing and validation, the engine's compiles (``jax.monitoring``: real compiles and
persistent-cache reads), its steady part and its tail (from the moment every sequence had a slot,
``jax_port.run_stats``), writing the output, and the rest.
"""

from __future__ import annotations

import io
import json
import os
import pstats
import subprocess
import sys
import time

CHILD = """
import cProfile, json, sys, time
t0 = time.perf_counter()
import unirep_port.cli, unirep_port.jax_port, tqdm
from unirep_port.jax_port import compile_cache, engine
t_import = time.perf_counter() - t0
if sys.argv[2] == "tail-off":
    engine.default_tail_floor = lambda platform: None
run_reps, in_engine = engine.run_reps, [0.0]
def timed_run_reps(*a, **k):  # compile seconds spent inside the engine
    c0 = compile_cache.counts()["seconds"]
    try:
        return run_reps(*a, **k)
    finally:
        in_engine[0] += compile_cache.counts()["seconds"] - c0
engine.run_reps = timed_run_reps
prof = cProfile.Profile()
prof.enable()
result = unirep_port.cli.run(sys.argv[3:])
rc = result.rc
prof.disable()
prof.dump_stats(sys.argv[1])
out = {"rc": rc, "import_s": t_import, "script_s": time.perf_counter() - t0}
out["engine_compile_s"] = in_engine[0]
out.update(compile=compile_cache.counts(), engine=engine.run_stats())
print("PHASES", json.dumps(out), flush=True)
if sys.argv[2] == "tail-on":  # the current command: the console script's exit
    unirep_port.cli.finish(result)
"""

# phase -> (file suffix, function name) whose cumulative time it is
FUNCTIONS = {
    "weight_load": ("jax_port/params.py", "load_params"),
    "weight_prepare": ("jax_port/model.py", "prepare_host"),
    "fasta_parse": ("unirep_port/fasta.py", "read_fasta"),
    "validate_tokenize": ("jax_port/api.py", "encode"),
    "engine": ("jax_port/engine.py", "run_reps"),
    "output_append": ("unirep_port/npzstream.py", "append"),
    "output_close": ("unirep_port/npzstream.py", "close"),
}


def _cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return sum(
        v[3] for (f, _, fn), v in stats.stats.items() if fn == name and f.endswith(suffix)
    )  # v = (calls, prim calls, tottime, cumtime, callers)


def profile_reps(
    reps_args: list[str], out: str | os.PathLike, tail: bool = True, env: dict | None = None
) -> dict:
    """Profile ``unirep-port reps *reps_args`` in a fresh process; write ``out`` (.prof).

    ``tail=False`` keeps the full batch to the end (the engine before issue 18). Returns the
    phases in seconds (``wall_s`` = the child's whole life) and the compile and engine counters.
    """
    out = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    argv = [sys.executable, "-c", CHILD, out, "tail-on" if tail else "tail-off", "reps"]
    t0 = time.perf_counter()
    res = subprocess.run(
        [*argv, *reps_args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    wall = time.perf_counter() - t0
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("PHASES ")]
    if res.returncode or not lines:
        raise ValueError(f"reps failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    child = json.loads(lines[-1][7:])
    stats = pstats.Stats(out, stream=io.StringIO())
    ph = {k: _cumulative(stats, *v) for k, v in FUNCTIONS.items()}
    comp = child["engine_compile_s"]
    tail_s = child["engine"]["tail_seconds"]
    phases = {
        "process_start_and_exit": wall - child["script_s"],
        "imports": child["import_s"],
        "weight_load": ph["weight_load"],
        "weight_prepare": ph["weight_prepare"],
        "fasta_parse": ph["fasta_parse"],
        "validate_tokenize": ph["validate_tokenize"],
        "engine_compile_or_cache_read": comp,
        "engine_steady": ph["engine"] - comp - tail_s,
        "engine_tail": tail_s,
        "output_write": ph["output_append"] + ph["output_close"],
    }
    phases["other"] = wall - sum(phases.values())
    return {"wall_s": wall, "phases_s": phases, **{k: child[k] for k in ("compile", "engine")}}


def table(result: dict) -> str:
    """The phases as a text table, with each phase's share of the wall time."""
    wall = result["wall_s"]
    rows = [f"{'phase':<24}{'seconds':>9}{'share':>8}"]
    for k, v in result["phases_s"].items():
        rows.append(f"{k:<24}{v:>9.2f}{v / wall:>8.1%}")
    rows.append(f"{'wall (fresh process)':<24}{wall:>9.2f}")
    c = result["compile"]
    rows.append(f"XLA compiles {c['compiles']}, persistent-cache hits {c['cache_hits']}")
    return "\n".join(rows)
