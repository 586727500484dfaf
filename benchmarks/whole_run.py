"""A whole ``unirep-port reps`` run on the real-protein panel against the best-batch roofline.

``python -m unirep_port.benchmarks.whole_run [-n 400] [--runs 3] [-o PATH] [--figure DIR]``
(1900 model, published weights; writes ``benchmarks/results/whole-run-roofline.json`` and the
figure ``whole_run_roofline`` in ``benchmarks/results/figures/``).

Measured side by side in one run:

* fresh processes of the command on the panel (``parity_tests/data/real_proteins.fasta``, the
  first ``-n``): one that fills the compile cache, then ``--runs`` with it warm; the wall time
  from ``fork`` to exit, and the engine's own seconds inside it;
* float32 GEMM roofline windows (:func:`benchmarks.roofline.median_gflops`: the step's two
  products, every library and both weight layouts, the best contender's median) at the run's
  batch and at B = 64, 128 and 256, taken between the runs, so the machine's state is the runs'.

Ratios are tokens/s (start tokens counted) over a roofline's tokens/s. ``vs_best_batch`` is over
the best batch's: what a user's machine could do at its most efficient GEMM shape.
``job_limit`` is the most any schedule can reach on this job: a sequence's steps run in order,
so the run lasts at least ``L_max`` steps (the longest protein's tokens), and spreading the
``N`` tokens evenly over them, ``N / L_max`` rows a step, is the cheapest way to do it when a
step's time grows at least linearly with its rows (more steps with fewer rows each only lower
the GEMM rate). So no run is faster than ``N`` tokens at the GEMM rate of ``N / L_max`` rows,
measured here at the run's batch, which the engine sizes to that count
(``engine.pick_batch``): ``job_limit = rate(run batch) / rate(best batch)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.benchmarks.harness import machine_info
from unirep_port.benchmarks.reps_e2e import Roof, fresh_process

SIZE, HIDDEN = 1900, 1900
BATCHES = (64, 128, 256)
ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "whole-run-roofline.json"


def _panel(n: int) -> list[tuple[str, str]]:
    from unirep_port.fasta import read_fasta

    return list(read_fasta(str(ROOT / "parity_tests" / "data" / "real_proteins.fasta")))[:n]


def measure(n: int = 400, runs: int = 3) -> dict:
    from unirep_port.jax_port import engine
    from unirep_port.weights import published

    recs = _panel(n)
    lens = np.array([len(s) + 1 for _, s in recs])
    tokens, l_max = int(lens.sum()), int(lens.max())
    batch = engine.pick_batch(len(recs), 256, 1, lens, engine.default_chunk_len("cpu", HIDDEN))
    roofs = {b: Roof(b) for b in sorted({batch, *BATCHES})}

    def windows() -> None:  # one roofline window at every batch, between the runs
        for r in roofs.values():
            r.window()

    res: dict = {
        "machine": machine_info(),
        "method": __doc__.split("\n\n", 2)[2],
        "size": SIZE,
        "panel": {"n": len(recs), "tokens": tokens, "longest_tokens": l_max},
        "run_batch": batch,
        "rows_per_step_if_even": tokens / l_max,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        published.load_published(SIZE)
        home = published.cache_sharing_weights(tmp / "cache")
        fasta = tmp / "panel.fasta"
        fasta.write_text("".join(f">{i}\n{s}\n" for i, s in recs))
        windows()
        res["cold_cache"] = fresh_process("after", fasta, tmp / "cold.npz", home)
        warm = []
        for i in range(runs):
            windows()
            warm.append(fresh_process("after", fasta, tmp / f"warm{i}.npz", home))
        windows()
    for r in (res["cold_cache"], *warm):
        r["tokens_per_s"] = tokens / r["wall_s"]
        r["engine_tokens_per_s"] = tokens / r["seconds"] if r.get("seconds") else None
    res["warm_cache"] = warm
    roof = {b: r.summary() for b, r in roofs.items()}
    res["roofline"] = {str(b): v for b, v in roof.items()}
    best_b = max(BATCHES, key=lambda b: roof[b]["tokens_per_s"])
    best = roof[best_b]["tokens_per_s"]
    tps = statistics.median(r["tokens_per_s"] for r in warm)
    eng = statistics.median(r["engine_tokens_per_s"] for r in warm)
    limit = roof[batch]["tokens_per_s"] / best
    res["ratios"] = {
        "best_batch": best_b,
        "warm_vs_best_batch": tps / best,
        "warm_vs_run_batch": tps / roof[batch]["tokens_per_s"],
        "engine_vs_best_batch": eng / best,
        "cold_vs_best_batch": res["cold_cache"]["tokens_per_s"] / best,
        "job_limit": limit,
        "warm_vs_job_limit": tps / best / limit,
        "target_vs_best_batch": 0.85,
        "meets_target": tps / best >= 0.85,
    }
    return res


def figure(res: dict, out_dir: str) -> list[str]:
    """Bars: the warm runs' tokens/s (whole process and engine alone), the first run's, and the
    job's limit, each over the best-batch roofline; the roofline's tokens/s per batch beside."""
    from unirep_port.benchmarks.figures import _plt, _save

    plt = _plt()
    r = res["ratios"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = ["first run\n(cold cache)", "warm cache\n(whole process)", "warm cache\n(engine)"]
    vals = [r["cold_vs_best_batch"], r["warm_vs_best_batch"], r["engine_vs_best_batch"]]
    ax.bar(names, vals, color=["#bbbbbb", "#1f77b4", "#6baed6"])
    ax.axhline(r["job_limit"], color="k", ls="--", lw=1, label="job limit (longest protein)")
    ax.axhline(r["target_vs_best_batch"], color="#d62728", ls=":", lw=1, label="target 0.85")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"tokens/s / best-batch roofline (B={r['best_batch']})")
    ax.set_title(f"{res['panel']['n']} real proteins, 1900 model, run batch {res['run_batch']}")
    ax.legend(fontsize=8, loc="lower right")
    bs = sorted(int(b) for b in res["roofline"])
    bx.plot(bs, [res["roofline"][str(b)]["tokens_per_s"] for b in bs], "o-")
    bx.axvline(res["run_batch"], color="k", ls="--", lw=1)
    bx.set_xlabel("batch (rows per step)")
    bx.set_ylabel("roofline tokens/s (float32 GEMM)")
    bx.set_title("the step's GEMM rate by batch, this run")
    fig.tight_layout()
    return _save(fig, out_dir, "whole_run_roofline")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=400, help="proteins of the panel (first n)")
    ap.add_argument("--runs", type=int, default=3, help="fresh runs with the cache warm")
    ap.add_argument("-o", "--output", default=str(OUT))
    ap.add_argument("--figure", default=str(RESULTS / "figures"), help="figure folder ('' none)")
    args = ap.parse_args(argv)
    res = measure(args.n, args.runs)
    with atomic_file(args.output, mode=0o644) as t:
        Path(t).write_text(json.dumps(res, indent=1, default=float))
    if args.figure:
        figure(res, args.figure)
    print(json.dumps(res["ratios"], indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
