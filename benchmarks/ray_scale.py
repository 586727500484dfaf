"""Scale of ``unirep-port reps --engine ray``: throughput with 1 and 2 workers, driver memory.

    python -m unirep_port.benchmarks.ray_scale [--part throughput,rss,driver]
        [--rss-records 1000000]
        [-o benchmarks/results/ray-scale.json]

* ``throughput``: one seeded file (1900 model; 1,024 records of 30-90 aa, shards of 256 so
  that each worker's batches are full, 256 slots, as in the in-process engine and as with the
  default 4,096-record shards; per-token cost does not depend on length at a full batch), run
  in fresh processes side by side: the in-process engine, Ray with 1 worker, Ray with 2
  workers. Wall time includes start-up (Ray, weights, compilation); per-worker steady
  throughput is residues over the summed per-shard seconds that workers report (compile of the
  first shard included). Outputs are checked bitwise equal.
* ``rss``: ``--rss-records`` short sequences (8-16 aa, 64 model, 2 workers, shards of 4,096):
  the driver's RSS sampled once a second beside the number of finished shards, and its peak
  (VmHWM) at the end.
* ``driver``: how fast the driver alone reads, hashes and cuts a UniRef50-like file (records
  per second): the ceiling on any number of workers fed by one driver.

Every timing run is meant to be wrapped in ``flock /tmp/bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port.alphabet import STANDARD_AA

AA = np.frombuffer(STANDARD_AA.encode(), np.uint8)


def write_fasta(path: Path, n: int, lo: int, hi: int, seed: int, wrap: int = 0) -> int:
    """Seeded random records, lengths uniform in [lo, hi]; ``wrap`` residues a line (0: one)."""
    rng = np.random.default_rng(seed)
    total = 0
    with open(path, "w") as fh:
        for i in range(n):
            length = int(rng.integers(lo, hi + 1))
            total += length
            s = AA[rng.integers(0, 20, length)].tobytes().decode()
            if wrap:
                s = "\n".join(s[j : j + wrap] for j in range(0, length, wrap))
            fh.write(f">s{i:08d}\n{s}\n")
    return total


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unirep_port.cli", "reps", *args, "--quiet"]


def _vm(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    except FileNotFoundError:
        pass
    return out


def _shards_done(out: Path) -> int:
    try:
        return (out / "_manifest.jsonl").read_text().count('"kind": "shard"')
    except FileNotFoundError:
        return 0


def _timed(argv: list[str], out: Path | None = None, sample: bool = False) -> dict:
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    series, hwm = [], 0
    while proc.poll() is None:
        vm = _vm(proc.pid)
        hwm = max(hwm, vm.get("VmHWM", 0))
        if sample and vm:
            series.append(
                {
                    "t_s": round(time.perf_counter() - t0, 1),
                    "shards_done": _shards_done(out),
                    "rss_mb": round(vm["VmRSS"] / 2**20, 1),
                }
            )
        time.sleep(1.0 if sample else 0.2)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{argv} failed ({proc.returncode}):\n{stderr[-3000:]}")
    res = {"wall_s": round(wall, 2), "driver_peak_rss_mb": round(hwm / 2**20, 1)}
    # Other jobs on a shared machine: the 1-minute load average around the run.
    res["load_avg_1min_before_after"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    if series:
        res["rss_series"] = series
    return res


def _shard_stats(out: Path) -> dict:
    lines = [json.loads(x) for x in (out / "_manifest.jsonl").read_text().splitlines()]
    shards = [e for e in lines if e["kind"] == "shard"]
    residues = sum(e["residues"] for e in shards)
    worker_s = sum(e["seconds"] for e in shards)
    return {
        "shards": len(shards),
        "worker_seconds": round(worker_s, 2),
        "per_worker_residues_per_s": round(residues / worker_s, 1),
    }


def throughput(d: Path, n: int, device: str | None = None) -> dict:
    from unirep_port.shards import load_reps

    src = d / "tp.fa"
    residues = write_fasta(src, n, 30, 90, seed=0)
    res: dict = {"model": 1900, "records": n, "residues": residues, "runs": {}}
    res["device"] = device or "cpu"
    dev = ["--device", device] if device else []
    local = d / "local.npz"
    r = _timed(_cli(str(src), "-o", str(local), "--size", "1900", *dev))
    r["residues_per_s"] = round(residues / r["wall_s"], 1)
    res["runs"]["in-process"] = r
    ref = load_reps(local)
    for w in (1, 2):
        out = d / f"ray{w}"
        argv = _cli(str(src), "-o", str(out), "--size", "1900", "--engine", "ray", *dev)
        r = _timed(argv + ["--workers", str(w), "--shard-size", "256"])
        r["residues_per_s"] = round(residues / r["wall_s"], 1)
        r.update(_shard_stats(out))
        got = load_reps(out)
        r["bitwise_equal_to_in_process"] = all(
            np.array_equal(got[k], ref[k]) for k in ("ids", "h_avg", "h_final", "c_final")
        )
        res["runs"][f"ray-{w}-worker{'s' if w > 1 else ''}"] = r
    one, two = res["runs"]["ray-1-worker"], res["runs"]["ray-2-workers"]
    res["speedup_2_vs_1_workers_wall"] = round(one["wall_s"] / two["wall_s"], 2)
    return res


def rss(d: Path, n: int) -> dict:
    src = d / "short.fa"
    residues = write_fasta(src, n, 8, 16, seed=1)
    out = d / "rss"
    argv = _cli(str(src), "-o", str(out), "--size", "64", "--engine", "ray", "--workers", "2")
    r = _timed(argv + ["--shard-size", "4096"], out=out, sample=True)
    series = r.pop("rss_series")
    total = max(s["shards_done"] for s in series) or 1
    picks = {}
    for frac in (0.1, 0.5, 0.9):
        s = next((s for s in series if s["shards_done"] >= frac * total), series[-1])
        picks[f"rss_mb_at_{int(frac * 100)}pct_shards"] = s["rss_mb"]
    return {
        "model": 64,
        "records": n,
        "residues": residues,
        **r,
        **picks,
        "residues_per_s": round(residues / r["wall_s"], 1),
        "rss_series_every_10th": series[::10],
    }


def driver(d: Path, n: int) -> dict:
    from unirep_port import shards
    from unirep_port.embedding import reps_sharded

    src = d / "uniref-like.fa"
    residues = write_fasta(src, n, 50, 550, seed=2, wrap=60)  # UniRef's 60 a line
    t0 = time.perf_counter()
    hashes = []
    for recs in reps_sharded._chunks(str(src), 4096):  # what the driver does per shard
        hashes.extend(hash(r.id) for r in recs)
        shards.input_digest(recs)
    dt = time.perf_counter() - t0
    return {
        "records": n,
        "residues": residues,
        "seconds": round(dt, 2),
        "records_per_s": round(n / dt),
        "residues_per_s": round(residues / dt),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--part", default="throughput,rss,driver")
    ap.add_argument("--tp-records", type=int, default=1024)
    ap.add_argument("--rss-records", type=int, default=1_000_000)
    ap.add_argument("--driver-records", type=int, default=100_000)
    ap.add_argument("--device", choices=["cpu", "gpu"], help="passed to every throughput run")
    ap.add_argument("-o", "--output", default="benchmarks/results/ray-scale.json")
    args = ap.parse_args(argv)
    import ray

    path = Path(args.output)
    res = json.loads(path.read_text()) if path.exists() else {}
    res.update(
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)",
            "python": platform.python_version(),
            "ray": ray.__version__,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for part in args.part.split(","):
            t0 = time.perf_counter()
            if part == "throughput":
                res[part] = throughput(d, args.tp_records, args.device)
            elif part == "rss":
                res[part] = rss(d, args.rss_records)
            elif part == "driver":
                res[part] = driver(d, args.driver_records)
            else:
                raise SystemExit(f"unknown part {part!r}")
            res[part]["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            print(part, f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items()}, indent=2)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
