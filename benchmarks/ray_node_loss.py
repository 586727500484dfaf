"""Losing a node mid-run on a two-node local Ray (issue 30), measured once on the 1900 model.

``python -m unirep_port.benchmarks.ray_node_loss [--input FASTA] [--out JSON]``

Runs ``unirep-port reps --engine ray --address ... --workers W --format parquet --shard-size 20``
on the real-protein panel against a loopback cluster (``unirep_port.embedding.local_cluster``,
Ray's default health checks) and records, per scenario, the wall time, what the driver said and
whether the output holds every id once, bitwise equal to the in-process engine's reps:

* ``clean``: head and one worker node, one CPU each, two workers;
* ``lost-capacity-left``: the same, the worker node removed ``--at`` seconds into the run;
* ``lost-no-capacity``: head with no CPU and one worker node, one worker, the node removed at
  ``--at`` s: the run must stop (exit 3) within ``--lost-worker-timeout`` plus Ray's detection;
  then a new node joins and the same command resumes;
* ``driver-killed``: two nodes, the driver SIGKILLed at ``--at`` s, then the command again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port.embedding.local_cluster import ClusterProcess
from unirep_port.shards import Manifest, load_reps

PANEL = Path(__file__).resolve().parents[1] / "parity_tests" / "data" / "real_proteins.fasta"


def _cli(args, out: Path, address: str, workers: int, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "unirep_port.cli", "reps", str(args.input), "-o", str(out)),
        *("--size", str(args.size), "--quiet", "--engine", "ray", "--address", address),
        *("--workers", str(workers), "--format", "parquet", "--shard-size", "20", *extra),
    ]


def _run(argv: list[str], log: Path, at: float | None = None, action=None) -> dict:
    """Run the CLI; call ``action(proc)`` ``at`` seconds in; its exit status and timings."""
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        event = None
        if at is not None:
            try:
                proc.wait(at)
            except subprocess.TimeoutExpired:
                action(proc)
                event = time.monotonic() - t0
        rc = proc.wait(1800)
    wall = time.monotonic() - t0
    text = log.read_text(errors="replace")
    lines = [
        ln
        for ln in text.splitlines()
        if ln.startswith(("ray:", "error:", "wrote ")) or " of " in ln
    ]
    res = {"rc": rc, "wall_s": round(wall, 1), "driver_said": lines[-12:]}
    if event is not None:
        res["event_at_s"] = round(event, 1)
        res["exit_after_event_s"] = round(wall - event, 1)
    return res


def _check(out: Path, ref: dict) -> dict:
    man = Manifest.read(out)
    res = {"shards_done": len(man.shards), "complete": man.complete is not None}
    if man.complete is not None:
        got = load_reps(out)
        ids = list(got["ids"])
        res["ids"] = len(ids)
        res["ids_once_in_order"] = ids == list(ref["ids"])
        res["bitwise_equal"] = all(
            np.array_equal(got[k], ref[k]) for k in ("h_avg", "h_final", "c_final")
        )
    return res


def _scenario(args, tmp: Path, ref: dict, name: str, head: int, nodes: dict, workers: int):
    """One scenario on a fresh cluster; returns its record."""
    c = ClusterProcess(tmp / f"{name}-cluster.log", head, nodes, "--object-store-mb", "400")
    out = tmp / name
    extra = ("--lost-worker-timeout", str(args.lost_worker_timeout))
    argv = _cli(args, out, c.address, workers, *extra)
    rec: dict = {"head_cpus": head, "nodes": nodes, "workers": workers}
    try:
        if name == "clean":
            rec["run"] = _run(argv, tmp / f"{name}.log")
        elif name == "driver-killed":
            rec["run"] = _run(
                argv, tmp / f"{name}.log", args.at, lambda p: p.send_signal(signal.SIGKILL)
            )
            rec["after_kill"] = _check(out, ref)
            rec["rerun"] = _run(argv, tmp / f"{name}-2.log")
        else:
            lose = lambda p: c.command("remove w0")  # noqa: E731
            rec["run"] = _run(argv, tmp / f"{name}.log", args.at, lose)
            if name == "lost-no-capacity":
                rec["after_loss"] = _check(out, ref)
                c.command("add w1 1")
                rec["rerun"] = _run(argv, tmp / f"{name}-2.log")
        rec["output"] = _check(out, ref)
    finally:
        c.close()
    return rec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", type=Path, default=PANEL)
    ap.add_argument("--size", type=int, default=1900)
    ap.add_argument("--at", type=float, default=30.0, help="seconds into the run to lose a node")
    ap.add_argument("--lost-worker-timeout", type=float, default=120.0)
    ap.add_argument("--only", action="append", help="scenario names to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ray-node-loss-1900.json"))
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ray-node-loss-"))
    t0 = time.monotonic()
    ref_path = tmp / "ref.npz"
    cmd = ["reps", str(args.input), "-o", str(ref_path), "--size", str(args.size), "--quiet"]
    subprocess.run([sys.executable, "-m", "unirep_port.cli", *cmd], check=True)
    ref = load_reps(ref_path)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)",
        "python": platform.python_version(),
        "ray": __import__("ray").__version__,
        "model": args.size,
        "input": f"{args.input.name}: {len(ref['ids'])} records",
        "in_process_s": round(time.monotonic() - t0, 1),
        "settings": "--workers W --format parquet --shard-size 20; Ray's default health checks",
        "lost_worker_timeout_s": args.lost_worker_timeout,
        "node_lost_at_s": args.at,
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "scenarios": {},
    }
    plan = {
        "clean": (1, {"w0": 1}, 2),
        "lost-capacity-left": (1, {"w0": 1}, 2),
        "lost-no-capacity": (0, {"w0": 1}, 1),
        "driver-killed": (1, {"w0": 1}, 2),
    }
    for name, (head, nodes, workers) in plan.items():
        if args.only and name not in args.only:
            continue
        load = os.getloadavg()[0]
        rec = _scenario(args, tmp, ref, name, head, nodes, workers)
        rec["load_avg_1min_before_after"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        result["scenarios"][name] = rec
        print(name, json.dumps(rec, indent=1), flush=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
