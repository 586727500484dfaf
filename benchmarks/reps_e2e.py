"""A whole ``unirep-port reps`` run against the roofline, before and after issue 18, one run.

``python -m unirep_port.benchmarks.reps_e2e [-n 200] [-o results/reps-e2e-issue18.json]``
(1900 model, published weights). Measured side by side, with roofline windows
(:func:`benchmarks.roofline.median_gflops`) between the phases:

* fresh processes on ``-n`` real proteins (``parity_tests/data/real_proteins.fasta``, a seeded
  subset): "before" (compile cache off, tail kept at the full batch), "after" with an empty
  compile cache, then with it warm; wall time from ``fork`` to exit;
* a one-sequence run in a fresh process, compile cache warm;
* in this process, warm: the proteins, the avGFP variants and a long-tailed mix, each with the
  tail shrinking on and off (outputs compared bitwise), uniform 64 x 238, and fast vs highest.

Ratios are tokens/s over the roofline's tokens/s (start tokens counted; median of windows).
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
ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CHILD = """
import json, sys, time
from unirep_port.jax_port import engine
if sys.argv[1] == "before":
    engine.default_tail_floor = lambda platform: None
from unirep_port.cli import main
rc = main(sys.argv[2:])
from unirep_port.jax_port import compile_cache
print("STATS", json.dumps({"rc": rc, **compile_cache.counts(), **engine.run_stats()}))
"""


def _proteins(n: int) -> list[tuple[str, str]]:
    from unirep_port.fasta import read_fasta

    recs = list(read_fasta(str(ROOT / "parity_tests" / "data" / "real_proteins.fasta")))
    return random.Random(0).sample(recs, min(n, len(recs)))


def _fresh(mode: str, fasta: Path, out: Path, home: Path, *extra: str) -> dict:
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("-o", "--output", default=str(RESULTS / "reps-e2e-issue18.json"))
    args = ap.parse_args(argv)
    from unirep_port import avgfp, jax_port
    from unirep_port.jax_port import engine, model
    from unirep_port.weights import published

    recs = _proteins(args.n)
    seqs = [s for _, s in recs]
    tokens = sum(len(s) + 1 for s in seqs)
    batch = engine.pick_batch(len(seqs), 256, 1, np.array([len(s) + 1 for s in seqs]))
    windows: dict[str, list[float]] = {}

    def roof_window():
        for k, v in median_gflops(HIDDEN, batch, windows=1).items():
            windows.setdefault(k, []).append(v)

    res: dict = {"machine": machine_info(), "size": SIZE, "batch": batch, "proteins": {}}
    res["proteins"] = {
        "n": len(seqs),
        "tokens": tokens,
        "lengths": [min(map(len, seqs)), max(map(len, seqs))],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "cache"
        home.mkdir()
        published.load_published(SIZE)
        (home / "published").symlink_to(published.canonical_path(SIZE).parent)
        fasta = tmp / "in.fasta"
        fasta.write_text("".join(f">{i}\n{s}\n" for i, s in recs))
        one = tmp / "one.fasta"
        one.write_text(f">{recs[0][0]}\n{recs[0][1]}\n")
        fresh = {}
        roof_window()
        fresh["before"] = _fresh("before", fasta, tmp / "a.npz", home, "--no-compile-cache")
        roof_window()
        fresh["after_cold_cache"] = _fresh("after", fasta, tmp / "b.npz", home)
        roof_window()
        fresh["after_warm_cache"] = _fresh("after", fasta, tmp / "c.npz", home)
        roof_window()
        fresh["one_seq_warm_cache"] = _fresh("after", one, tmp / "d.npz", home)
        fresh["one_seq_before"] = _fresh("before", one, tmp / "e.npz", home, "--no-compile-cache")
        with np.load(tmp / "a.npz") as a, np.load(tmp / "b.npz") as b:
            fresh["before_vs_after_bitwise"] = all(
                np.array_equal(a[k], b[k]) for k in ("h_avg", "h_final", "c_final")
            )
        for k in ("before", "after_cold_cache", "after_warm_cache"):
            fresh[k]["tokens_per_s"] = tokens / fresh[k]["wall_s"]
        fresh["one_seq_len"] = len(recs[0][1])
    res["fresh_process"] = fresh

    m = model.as_model(jax_port.load_params(SIZE), SIZE)
    t_first, _ = _inproc(seqs, m)  # compiles every tail size
    inproc = {"first_call_s": t_first}
    gfp = [v.sequence for v in avgfp.load_variants(96, seed=0)]
    rng = np.random.default_rng(3)
    tail_mix = [
        "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(n)))
        for n in np.clip(rng.lognormal(np.log(120), 0.9, 96), 20, 1500)
    ]
    for name, ss in (("proteins", seqs), ("avgfp_96", gfp), ("long_tailed_96", tail_mix)):
        row = {"tokens": sum(len(s) + 1 for s in ss)}
        _inproc(ss, m, tail_floor=None)  # warm the off path's batch too
        roof_window()
        t_off, r_off = _inproc(ss, m, tail_floor=None)
        t_on, r_on = _inproc(ss, m)
        row.update(off_s=t_off, on_s=t_on, speedup=t_off / t_on)
        row["bitwise_equal"] = all(np.array_equal(a, b) for a, b in zip(r_off, r_on))
        row["max_abs_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(r_off, r_on))
        row["tokens_per_s_on"] = row["tokens"] / t_on
        inproc[name] = row
    uni = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 238)) for _ in range(64)]
    _inproc(uni, m, batch_size=64)
    t_u = [_inproc(uni, m, batch_size=64)[0] for _ in range(2)]
    inproc["uniform_64x238"] = {
        "tokens": 64 * 239,
        "warm_s": t_u,
        "tokens_per_s": 64 * 239 / statistics.median(t_u),
    }
    roof_window()
    fast = {}
    for name, ss, kw in (("uniform_64x238", uni, {"batch_size": 64}), ("proteins", seqs, {})):
        _inproc(ss, m, precision="fast", **kw)
        t_hi = _inproc(ss, m, precision="highest", **kw)[0]
        t_fa = _inproc(ss, m, precision="fast", **kw)[0]
        fast[name] = {
            "highest_s": t_hi,
            "fast_s": t_fa,
            "fast_over_highest_speed": t_hi / t_fa,
            "fast_ran": engine.last_plan().used,
            "notice": engine.last_plan().notice,
        }
    inproc["fast_vs_highest"] = fast
    roof_window()
    res["in_process_warm"] = inproc

    med = {k: statistics.median(v) for k, v in windows.items()}
    best = max(med, key=med.get)
    roof_tps = med[best] * 1e9 / flops_per_token(SIZE)
    res["roofline"] = {
        "batch": batch,
        "best": best,
        "gflops": med[best],
        "tokens_per_s": roof_tps,
        "median_gflops": med,
        "windows": len(windows[best]),
    }
    ratios = {
        f"fresh_{k}": fresh[k]["tokens_per_s"] / roof_tps
        for k in ("before", "after_cold_cache", "after_warm_cache")
    }
    ratios["in_process_proteins"] = inproc["proteins"]["tokens_per_s_on"] / roof_tps
    ratios["in_process_proteins_tail_off"] = (
        inproc["proteins"]["tokens"] / inproc["proteins"]["off_s"] / roof_tps
    )
    u_roof = max(median_gflops(HIDDEN, 64, windows=3).values()) * 1e9 / flops_per_token(SIZE)
    ratios["uniform_64x238_vs_B64_roofline"] = inproc["uniform_64x238"]["tokens_per_s"] / u_roof
    res["ratios_to_roofline"] = ratios
    res["one_seq_wall_s"] = {
        "warm_cache": fresh["one_seq_warm_cache"]["wall_s"],
        "before": fresh["one_seq_before"]["wall_s"],
    }
    with atomic_file(args.output, mode=0o644) as t:
        Path(t).write_text(json.dumps(res, indent=1, default=float))
    print(
        json.dumps(
            {"ratios": ratios, "one_seq": res["one_seq_wall_s"], "fast": fast},
            indent=1,
            default=float,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
