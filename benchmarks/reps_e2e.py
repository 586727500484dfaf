"""A whole ``unirep-port reps`` run against the roofline, before and after issue 18, one run.

``python -m unirep_port.benchmarks.reps_e2e [-n 200] [-o results/reps-e2e.json]``
(1900 model, published weights). Measured side by side, with roofline windows
(:func:`benchmarks.roofline.median_gflops`) between the phases:

* fresh processes on ``-n`` real proteins (``parity_tests/data/real_proteins.fasta``, a seeded
  subset): "before" (compile cache off, tail kept at the full batch), "after" with an empty
  compile cache, then with it warm; wall time from ``fork`` to exit;
* a one-sequence run (avGFP wild type, 238 aa) in a fresh process, before and compile cache warm;
* the phase profile of a fresh run before and after (:mod:`benchmarks.profile_reps`);
* in this process, warm: the proteins, the avGFP variants and a long-tailed mix, each with the
  tail shrinking on and off in three interleaved rounds (medians; outputs compared bitwise),
  uniform 64 x 238, and fast vs highest.

Ratios are tokens/s over the roofline's tokens/s (start tokens counted): the roofline is the best
contender's median over all windows of the run; each timed run also records the windows just
before and after it, to show how contended the machine was then.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.benchmarks.harness import flops_per_token, machine_info
from unirep_port.benchmarks.roofline import median_gflops

SIZE, HIDDEN = 1900, 1900
REPS = ("h_avg", "h_final", "c_final")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CHILD = """
import json, sys, time
from unirep_port.jax_port import engine
if sys.argv[1] == "before":
    engine.default_tail_floor = lambda platform: None
from unirep_port.cli import finish, run
result = run(sys.argv[2:])
rc = result.rc
from unirep_port.jax_port import compile_cache
print("STATS", json.dumps({"rc": rc, **compile_cache.counts(), **engine.run_stats()}))
if sys.argv[1] == "before":
    sys.exit(rc)  # the interpreter's teardown, as before issue 18
finish(result)  # the console script's exit (unirep_port.cli.entry)
"""


def _proteins(n: int) -> list[tuple[str, str]]:
    from unirep_port.fasta import read_fasta

    recs = list(read_fasta(str(ROOT / "parity_tests" / "data" / "real_proteins.fasta")))
    return random.Random(0).sample(recs, min(n, len(recs)))


def fresh_process(mode: str, fasta: Path, out: Path, home: Path, *extra: str) -> dict:
    """One fresh ``unirep-port reps`` process on ``fasta`` (1900 model, ``UNIREP_PORT_CACHE``
    = ``home``): wall seconds from fork to exit, and the engine's counters. ``mode``: "after"
    (the command as it is) or "before" (issue 18's tail kept and interpreter teardown)."""
    env = {k: v for k, v in os.environ.items() if k != "UNIREP_PORT_NO_COMPILE_CACHE"}
    env["UNIREP_PORT_CACHE"] = str(home)
    argv = ["reps", str(fasta), "-o", str(out), "--size", str(SIZE), "--quiet", "--force", *extra]
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", CHILD, mode, *argv], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    stats = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("STATS")][-1][6:])
    return {"wall_s": wall, **stats}


def _inproc(seqs, m, **kw):
    from unirep_port import jax_port
    from unirep_port.jax_port import engine

    toks = jax_port.encode(seqs)
    t0 = time.perf_counter()
    out = engine.run_reps(toks, m, **kw)
    return time.perf_counter() - t0, out


class Roof:
    """Roofline windows at one batch, taken between the timed runs."""

    def __init__(self, batch: int):
        self.batch, self.windows = batch, {}

    def window(self) -> float:
        med = median_gflops(HIDDEN, self.batch, windows=1)
        for k, v in med.items():
            self.windows.setdefault(k, []).append(v)
        return max(med.values())

    def timed(self, fn):
        """``fn()`` with a window before and after: (result, [gflops before, after])."""
        before = self.window()
        out = fn()
        return out, [before, self.window()]

    def summary(self) -> dict:
        med = {k: statistics.median(v) for k, v in self.windows.items()}
        best = max(med, key=med.get)
        return {
            "batch": self.batch,
            "best": best,
            "gflops": med[best],
            "tokens_per_s": med[best] * 1e9 / flops_per_token(SIZE),
            "median_gflops": med,
            "windows": len(self.windows[best]),
        }


def _fresh_runs(recs, one_seq: str, roof: Roof, tmp: Path) -> dict:
    from unirep_port.benchmarks.profile_reps import profile_reps
    from unirep_port.weights import published

    home = tmp / "cache"
    home.mkdir()
    published.load_published(SIZE)
    (home / "published").symlink_to(published.canonical_path(SIZE).parent)
    fasta, one = tmp / "in.fasta", tmp / "one.fasta"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in recs))
    one.write_text(f">avGFP_WT\n{one_seq}\n")
    tokens = sum(len(s) + 1 for _, s in recs)
    plan = [
        ("before_1", "before", fasta, "--no-compile-cache"),
        ("after_cold_cache", "after", fasta),
        ("after_warm_cache_1", "after", fasta),
        ("before_2", "before", fasta, "--no-compile-cache"),
        ("after_warm_cache_2", "after", fasta),
        ("one_seq_before", "before", one, "--no-compile-cache"),
        ("one_seq_warm_cache_1", "after", one),
        ("one_seq_warm_cache_2", "after", one),
    ]
    out = {}
    for name, mode, src, *extra in plan:
        dst = tmp / f"{name}.npz"
        run, win = roof.timed(lambda a=(mode, src, dst, home, *extra): fresh_process(*a))
        run["roofline_gflops_around"] = win
        if src == fasta:
            run["tokens_per_s"] = tokens / run["wall_s"]
        out[name] = run
    with np.load(tmp / "before_1.npz") as a, np.load(tmp / "after_cold_cache.npz") as b:
        out["before_vs_after_bitwise"] = all(np.array_equal(a[k], b[k]) for k in REPS)
    env = {"UNIREP_PORT_CACHE": str(home)}
    args = [str(fasta), "-o", str(tmp / "p.npz"), "--size", str(SIZE), "--quiet", "--force"]
    out["profile_before"] = profile_reps(
        [*args, "--no-compile-cache"], tmp / "before.prof", tail=False, env=env
    )
    out["profile_after_warm_cache"] = profile_reps(args, tmp / "after.prof", env=env)
    return out


def _tail_gain(m, mixes: dict, roof: Roof, rounds: int = 3) -> dict:
    """Each mix in process, warm, tail shrinking off and on in ``rounds`` interleaved rounds
    (off, on, off, on, ...), roofline windows around every run; the figures are the medians."""
    out = {}
    for name, ss in mixes.items():
        _inproc(ss, m, tail_floor=None)  # compile and warm both paths first
        _inproc(ss, m)
        row = {"n": len(ss), "tokens": sum(len(s) + 1 for s in ss), "rounds": rounds}
        times: dict = {"off": [], "on": []}
        around: dict = {"off": [], "on": []}
        results: dict = {}
        for _ in range(rounds):
            for side, floor in (("off", None), ("on", "auto")):
                (t, r), w = roof.timed(lambda ss=ss, f=floor: _inproc(ss, m, tail_floor=f))
                times[side].append(t)
                around[side] += w
                results.setdefault(side, r)
        t_off, t_on = statistics.median(times["off"]), statistics.median(times["on"])
        row.update(tail_off_s=times["off"], tail_on_s=times["on"], speedup=t_off / t_on)
        row["roofline_gflops_around_off"] = around["off"]
        row["roofline_gflops_around_on"] = around["on"]
        row["bitwise_equal"] = all(
            np.array_equal(a, b) for a, b in zip(results["off"], results["on"])
        )
        row["tokens_per_s_on"], row["tokens_per_s_off"] = (
            row["tokens"] / t_on,
            row["tokens"] / t_off,
        )
        out[name] = row
    return out


def _fast_vs_highest(m, mixes: dict) -> dict:
    from unirep_port.jax_port import engine

    out = {}
    for name, (ss, kw) in mixes.items():
        _inproc(ss, m, precision="fast", **kw)  # compiles the bf16 chunk
        t_hi = [_inproc(ss, m, precision="highest", **kw)[0]]
        t_fa = [_inproc(ss, m, precision="fast", **kw)[0]]
        t_hi.append(_inproc(ss, m, precision="highest", **kw)[0])
        t_fa.append(_inproc(ss, m, precision="fast", **kw)[0])
        plan = engine.last_plan()
        out[name] = {
            "highest_s": t_hi,
            "fast_s": t_fa,
            "fast_speed_over_highest": statistics.median(t_hi) / statistics.median(t_fa),
            "fast_ran": plan.used,
            "notice": plan.notice,
        }
    return out


def adjacent_ratios(res: dict) -> dict:
    """Each timed run's tokens/s over the roofline of the two windows taken around it (their
    mean): the ratio as contended as the run itself was, beside the whole-run median one."""
    fpt = flops_per_token(SIZE)
    out = {}
    for k, v in res.get("fresh_process", {}).items():
        if isinstance(v, dict) and "tokens_per_s" in v:
            out[f"fresh_{k}"] = v["tokens_per_s"] / (
                np.mean(v["roofline_gflops_around"]) * 1e9 / fpt
            )
    for k, row in res.get("in_process_warm", {}).get("tail", {}).items():
        for side in ("on", "off"):
            roof = np.mean(row[f"roofline_gflops_around_{side}"]) * 1e9 / fpt
            out[f"in_process_{k}_tail_{side}"] = row[f"tokens_per_s_{side}"] / roof
    return out


def _save(res: dict, path: str) -> None:
    with atomic_file(path, mode=0o644) as t:
        Path(t).write_text(json.dumps(res, indent=1, default=float))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("-o", "--output", default=str(RESULTS / "reps-e2e.json"))
    args = ap.parse_args(argv)
    from unirep_port import avgfp, jax_port
    from unirep_port.jax_port import engine, model, precision

    recs = _proteins(args.n)
    seqs = [s for _, s in recs]
    tokens = sum(len(s) + 1 for s in seqs)
    lens = np.array([len(s) + 1 for s in seqs])
    batch = engine.pick_batch(len(seqs), 256, 1, lens, engine.default_chunk_len("cpu", HIDDEN))
    roof = Roof(batch)
    res: dict = {"machine": machine_info(), "size": SIZE, "batch": batch}
    res["proteins"] = {
        "n": len(seqs),
        "tokens": tokens,
        "lengths": [min(map(len, seqs)), max(map(len, seqs))],
    }
    with tempfile.TemporaryDirectory() as tmp:
        fresh = _fresh_runs(recs, avgfp.WILD_TYPE, roof, Path(tmp))
    res["fresh_process"] = fresh
    _save(res, args.output)  # partial results survive a failure further on

    m = model.as_model(jax_port.load_params(SIZE), SIZE)
    rng = np.random.default_rng(3)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    mixes = {
        "proteins": seqs,
        "avgfp_96": [v.sequence for v in avgfp.load_variants(96, seed=0)],
        "long_tailed_96": [
            "".join(rng.choice(aa, int(n)))
            for n in np.clip(rng.lognormal(np.log(120), 0.9, 96), 20, 1500)
        ],
    }
    inproc = {"tail": _tail_gain(m, mixes, roof)}
    res["in_process_warm"] = inproc
    _save(res, args.output)
    uni = ["".join(rng.choice(aa, 238)) for _ in range(64)]
    roof64 = Roof(64)
    _inproc(uni, m, batch_size=64)
    t_u = [roof64.timed(lambda: _inproc(uni, m, batch_size=64)[0])[0] for _ in range(2)]
    r64 = roof64.summary()
    inproc["uniform_64x238"] = {
        "warm_s": t_u,
        "tokens_per_s": 64 * 239 / statistics.median(t_u),
        "roofline_b64": r64,
    }
    inproc["fast_vs_highest"] = _fast_vs_highest(m, {"uniform_64x238": (uni, {"batch_size": 64})})
    inproc["probe_speedup_b64"] = precision.probe(HIDDEN, 64)
    res["in_process_warm"] = inproc
    res["roofline"] = r = roof.summary()
    tps = r["tokens_per_s"]
    ratios = {
        k: v["tokens_per_s"] / tps
        for k, v in fresh.items()
        if isinstance(v, dict) and "tokens_per_s" in v
    }
    for k, row in inproc["tail"].items():
        ratios[f"in_process_{k}_tail_on"] = row["tokens_per_s_on"] / tps
        ratios[f"in_process_{k}_tail_off"] = row["tokens_per_s_off"] / tps
    ratios["in_process_uniform_64x238_vs_B64_roofline"] = (
        inproc["uniform_64x238"]["tokens_per_s"] / r64["tokens_per_s"]
    )
    res["ratios_to_roofline"] = ratios
    res["ratios_to_adjacent_windows"] = adjacent_ratios(res)
    res["one_seq_wall_s"] = {k: v["wall_s"] for k, v in fresh.items() if k.startswith("one_seq")}
    _save(res, args.output)
    print(json.dumps({"ratios": ratios, "one_seq": res["one_seq_wall_s"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
