"""Fast mode vs highest on this CPU, side by side in one run (issue 11's speed cells).

``python -m unirep_port.benchmarks.fastmode [-o benchmarks/results/fastmode-cpu.json]
[--skip-fresh]``
(wrap it in ``flock /tmp/bench.lock`` on a shared machine). In one process, interleaved:

* ``roofline``: the CPU's measured matmul throughput at the 1900 step's own shapes,
  ``(B, H) @ (H, 4H)`` and ``(B, H) @ (H, H)`` in a compiled loop of dependent steps, float32
  (``Precision.HIGHEST``) and bf16 inputs with float32 accumulation, at B = 1, 4, 8, 64, 256:
  the bf16 path's own speed-up, and the bound each mode is held to. The fast mode rounds only
  the 4H-wide products (80% of a 1900 step's FLOPs), so its bound is the *split* roofline,
  ``1 / (0.8 / R_bf16 + 0.2 / R_f32)``; the fraction of the pure bf16 roofline is given too.
* ``warm``: 64 x 238 aa (seeded random), sizes 1900, 256 and 64, "highest" vs "fast" vs
  jax-unirep 3.0.0 (if installed), first call (compile) apart from the warm calls, rounds
  interleaved so machine load hits every contender alike; tokens/s, speed-up, roofline fractions.
* ``split``: the same 1900 / 256 workload with *all four* matrices in bf16 instead of the 4H-wide
  ones: speed and error against "highest" (the measurement behind ``jax_port.precision``).
* ``fresh``: ``unirep-port reps`` on 300 mixed-length sequences (``benchmarks.targets``'
  workload), a fresh process per precision, whole-command wall time.

The result records the CPU's bf16 path (``amx_bf16`` / ``avx512_bf16`` / ``none``), the load
average before and after, and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port.alphabet import STANDARD_AA
from unirep_port.benchmarks.harness import flops_per_token, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (1900, 256, 64)
BATCHES = (1, 4, 8, 64, 256)
BF16_SHARE = 0.8  # (H x 4H) of (H x H + H x 4H): the FLOPs the fast mode rounds


def step_gflops(
    hidden: int, batch: int, bf16: bool | str, rounds: int = 5, steps: int | None = None
) -> float:
    """GFLOP/s of ``(B, H) . (4H, H)`` and ``(B, H) . (H, H)`` (the port's transposed layout)
    in a jitted loop of dependent steps (warm median; ``jax_port.step_gemm.gflops``).

    ``bf16``: True for bf16 inputs with float32 accumulation, False for float32 at "highest"; or
    a precision name, ``"highest"``, ``"tf32"`` (float32 inputs, TF32 units) or ``"bf16"``.
    """
    from unirep_port.jax_port import step_gemm

    prec = bf16 if isinstance(bf16, str) else ("bf16" if bf16 else "highest")
    return step_gemm.gflops(hidden, batch, prec, rounds=rounds, steps=steps)


def roofline(hidden: int = 1900) -> dict:
    out = {}
    for b in BATCHES:
        f32, bf = step_gflops(hidden, b, False), step_gflops(hidden, b, True)
        split = 1.0 / (BF16_SHARE / bf + (1 - BF16_SHARE) / f32)
        out[str(b)] = {"f32_gflops": f32, "bf16_gflops": bf, "bf16_over_f32": bf / f32}
        out[str(b)]["split_gflops"] = split
    return out


def _seqs(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(STANDARD_AA), length)) for _ in range(n)]


def _interleaved(fns: dict, rounds: int) -> dict:
    """First call of each (compile) timed alone, then ``rounds`` rounds, contenders interleaved."""
    out = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        fn()
        out[name] = {"first_call_s": time.perf_counter() - t, "warm_s": []}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[name]["warm_s"].append(time.perf_counter() - t)
    for v in out.values():
        v["median_s"] = statistics.median(v["warm_s"])
        v["min_s"] = min(v["warm_s"])
    return out


def warm(size: int, roof: dict, rounds: int, with_jax_unirep: bool) -> dict:
    from unirep_port import jax_port, weights
    from unirep_port.jax_port import engine, precision

    canon = weights.load_published(size)
    params = jax_port.load_params(canon)
    n, length = 64, 238
    seqs = _seqs(n, length, seed=1)
    tokens = n * (length + 1)
    fns = {
        "highest": lambda: jax_port.get_reps(seqs, params, size, precision="highest"),
        "fast": lambda: jax_port.get_reps(seqs, params, size, precision="fast"),
    }
    ju_note = None
    if with_jax_unirep:
        try:
            from unirep_port.benchmarks.adapters import make_adapter

            ju = make_adapter("jax-unirep")
            ju.prepare(size, canon)
            fns["jax-unirep"] = lambda: ju.run(seqs)
        except Exception as exc:  # an absent peer is recorded, not fatal
            ju_note = f"jax-unirep unavailable: {exc}"
    t = _interleaved(fns, rounds)
    jax_port.get_reps(seqs, params, size, precision="fast")
    plan = engine.last_plan()
    fpt = flops_per_token(size)
    r = roof["64"]
    for v in t.values():
        v["tokens_per_s"] = tokens / v["median_s"]
        v["tokens_per_s_best"] = tokens / v["min_s"]
        gf = v["tokens_per_s"] * fpt / 1e9
        v["gflops"] = gf
        v["fraction_f32_roofline"] = gf / r["f32_gflops"]
        v["fraction_bf16_roofline"] = gf / r["bf16_gflops"]
        v["fraction_split_roofline"] = gf / r["split_gflops"]
    hi, lo = (
        jax_port.get_reps(seqs, params, size),
        jax_port.get_reps(seqs, params, size, precision="fast"),
    )
    return {
        "workload": f"{n} x {length} aa, seeded random, warm",
        "size": size,
        "tokens": tokens,
        "fast_plan": plan.used,
        "fast_split": list(precision.FAST_SPLIT),
        "results": t,
        "speedup_fast_over_highest_median": t["highest"]["median_s"] / t["fast"]["median_s"],
        "speedup_fast_over_highest_best": t["highest"]["min_s"] / t["fast"]["min_s"],
        "speedup_fast_over_jax_unirep": (
            t["jax-unirep"]["median_s"] / t["fast"]["median_s"] if "jax-unirep" in t else None
        ),
        "rep_max_abs_diff_fast_vs_highest": {
            k: float(np.abs(a - b).max())
            for k, a, b in zip(("h_avg", "h_final", "c_final"), hi, lo)
        },
        "note": ju_note,
    }


def split(size: int, rounds: int) -> dict:
    """All four matrices in bf16 vs the chosen 4H-wide ones: speed and error vs highest."""
    from unirep_port import jax_port, weights
    from unirep_port.jax_port import precision

    params = jax_port.load_params(weights.load_published(size))
    seqs = _seqs(64, 238, seed=1)
    chosen = precision.FAST_SPLIT
    splits = {"chosen": chosen, "all_four": ("wmh", "wh", "wmx", "wx")}

    def run(sp):
        def f():
            precision.FAST_SPLIT = sp
            try:
                return jax_port.get_reps(seqs, params, size, precision="bf16")
            finally:
                precision.FAST_SPLIT = chosen

        return f

    fns = {"highest": lambda: jax_port.get_reps(seqs, params, size)}
    fns.update({k: run(v) for k, v in splits.items()})
    t = _interleaved(fns, rounds)
    hi = fns["highest"]()
    out = {"size": size, "splits": {k: list(v) for k, v in splits.items()}, "timing": t}
    for k in splits:
        lo = fns[k]()
        out[k] = {
            "speedup_median": t["highest"]["median_s"] / t[k]["median_s"],
            "speedup_best": t["highest"]["min_s"] / t[k]["min_s"],
            "h_avg_max_abs": float(np.abs(lo[0] - hi[0]).max()),
            "h_avg_mean_abs": float(np.abs(lo[0] - hi[0]).mean()),
            "h_final_max_abs": float(np.abs(lo[1] - hi[1]).max()),
        }
    return out


def fresh(tmp: Path) -> dict:
    from unirep_port.benchmarks import targets

    lengths = targets.mixed_lengths(300)
    fasta = tmp / "mixed.fasta"
    targets._write_fasta(fasta, targets._seqs(lengths, seed=2))
    tokens = sum(lengths) + len(lengths)
    out = {"workload": "300 mixed lengths (benchmarks.targets.mixed_e2e), fresh process"}
    for prec in ("highest", "fast"):
        cmd = [sys.executable, "-m", "unirep_port.cli", "reps", str(fasta), "-o"]
        cmd += [str(tmp / f"{prec}.npz"), "--size", "1900", "--quiet", "--force"]
        run = targets._cmd_child([*cmd, "--precision", prec], timeout=900)
        out[prec] = {**run, "tokens": tokens, "tokens_per_s": tokens / run["wall_s"]}
    out["speedup"] = out["highest"]["wall_s"] / out["fast"]["wall_s"]
    with np.load(tmp / "highest.npz") as a, np.load(tmp / "fast.npz") as b:
        out["h_avg_max_abs_diff"] = float(np.abs(a["h_avg"] - b["h_avg"]).max())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=str(RESULTS / "fastmode-cpu.json"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-fresh", action="store_true")
    ap.add_argument("--sizes", default="1900,256,64")
    a = ap.parse_args(argv)
    from unirep_port.jax_port import precision

    res = {
        "machine": machine_info(),
        "cpu_bf16_path": precision.cpu_bf16_path(),
        "load_average_before": os.getloadavg(),
        "what": __doc__.split("\n\n")[1].strip(),
    }

    def save():
        res["load_average_after"] = os.getloadavg()
        Path(a.output).write_text(json.dumps(res, indent=1, default=str))

    t0 = time.perf_counter()
    res["roofline_1900"] = roofline(1900)
    save()
    res["warm"] = {}
    for size in (int(s) for s in a.sizes.split(",")):
        res["warm"][str(size)] = warm(
            size,
            res["roofline_1900"] if size == 1900 else {"64": _small_roof(size)},
            a.rounds,
            True,
        )
        save()
    res["split"] = [split(s, a.rounds) for s in (1900, 256)]
    save()
    if not a.skip_fresh:
        with tempfile.TemporaryDirectory() as tmp:
            res["fresh"] = fresh(Path(tmp))
    res["seconds"] = time.perf_counter() - t0
    save()
    print(json.dumps(_digest(res), indent=1))
    return 0


def _small_roof(size: int) -> dict:
    from unirep_port.sizes import get_size

    h = get_size(size).hidden
    f32, bf = step_gflops(h, 64, False), step_gflops(h, 64, True)
    return {
        "f32_gflops": f32,
        "bf16_gflops": bf,
        "bf16_over_f32": bf / f32,
        "split_gflops": 1.0 / (BF16_SHARE / bf + (1 - BF16_SHARE) / f32),
    }


def _digest(res: dict) -> dict:
    d = {"cpu_bf16_path": res["cpu_bf16_path"]}
    d["bf16_over_f32_gemm"] = {b: r["bf16_over_f32"] for b, r in res["roofline_1900"].items()}
    for size, w in res.get("warm", {}).items():
        d[f"warm_{size}"] = {
            "speedup_median": w["speedup_fast_over_highest_median"],
            "speedup_best": w["speedup_fast_over_highest_best"],
            "fast_tok_s": w["results"]["fast"]["tokens_per_s"],
            "fast_fraction_bf16_roofline": w["results"]["fast"]["fraction_bf16_roofline"],
            "fast_fraction_split_roofline": w["results"]["fast"]["fraction_split_roofline"],
            "highest_fraction_f32_roofline": w["results"]["highest"]["fraction_f32_roofline"],
            "vs_jax_unirep": w["speedup_fast_over_jax_unirep"],
        }
    if "fresh" in res:
        d["fresh_speedup"] = res["fresh"]["speedup"]
    return d


if __name__ == "__main__":
    sys.exit(main())
