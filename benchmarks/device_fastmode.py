"""Fast mode on a lent device machine, in one run: GPU matrix, GPU errors, host-CPU checks.

``python -m unirep_port.benchmarks.device_fastmode --out DIR [--budget-s 420] [--small]`` writes
``DIR/device-fastmode.json`` after every part (a part that fails records its error and the
run goes on; parts past ``--budget-s`` are skipped and say so):

1. ``gemm``: the accelerator's measured throughput at the step's own shapes, ``(B, H) @ (H, 4H)``
   and ``(B, H) @ (H, H)`` in a compiled loop of dependent steps, per precision: "highest"
   (float32), "tf32" (float32 inputs, TF32 tensor cores) and "bf16" (bf16 inputs, float32
   accumulation); plus one large square GEMM per precision as the device's peak.
2. ``matrix``: ``jax_port.get_reps`` on seeded random weights of the true 1900 shapes
   (``weights.random_params``), per precision and workload (64 x 238, 1024 x 238, 4096 x 100):
   compile (first call) apart from warm (median of the later calls), tokens/s, and tokens/s x
   FLOPs per token as a fraction of part 1's throughput at the same precision and batch.
3. ``errors``: on the real 64 and 256 weights (carried in ``$UNIREP_PORT_CACHE``), each
   precision's reps against "highest" on the device, and against the float64 oracle
   (``parity.oracle``) on a few sequences.
4. ``host_cpu``: the host CPU's model and bf16 path; the golden-fixture parity test
   (``parity_tests/test_golden.py -k "port_matches_golden and not 1900"``) with JAX on the CPU,
   as is, on one core, and with XLA's ISA capped at AVX2 (issue 10's portability matrix); and
   fast vs highest on the host CPU for the 1900-shaped 64 x 238 workload.

Ready-made device call (the device has no network and may lack our pure-Python deps)::

    # here: wheels and the 64/256 weights into an ignored folder that travels with `carry`
    mkdir -p build/device/wheels build/device/cache/published
    pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform any -d build/device/wheels \
        jaxtyping wadler-lindig optax chex toolz safetensors tqdm absl-py pytest pluggy \
        iniconfig packaging pygments
    cp ~/.cache/unirep-port/published/unirep-{64,256}.safetensors build/device/cache/published/
    pip wheel --no-deps -w build/device/wheels .   # this package (pure Python): the device
    # needs it installed, as the design card's folders become unirep_port.* only when installed
    # device (carry ["build/device"], timeout_s 600):
    export UNIREP_PORT_CACHE=$PWD/build/device/cache
    python3 -m pip install -q --no-index --find-links build/device/wheels jaxtyping optax \
        chex safetensors tqdm pytest
    python3 -m pip install -q --no-index --no-deps --find-links build/device/wheels unirep-port
    timeout 540 python3 -m unirep_port.benchmarks.device_fastmode --out $OUT --budget-s 420

then copy ``device-fastmode.json`` to ``benchmarks/results/gpu-<h100|h200>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from unirep_port.alphabet import STANDARD_AA
from unirep_port.atomic import atomic_file

PRECISIONS = ("highest", "tf32", "bf16")


def _precs() -> tuple[str, ...]:
    """The precisions this backend has ("tf32" exists on GPUs only)."""
    import jax

    cpu = jax.local_devices()[0].platform == "cpu"
    return tuple(p for p in PRECISIONS if not (cpu and p == "tf32"))


T0 = time.perf_counter()


def _seqs(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(STANDARD_AA), length)) for _ in range(n)]


def gemm_gflops(hidden: int, batch: int, prec: str, rounds: int = 5) -> float:
    """GFLOP/s of the step's two matmuls at ``prec`` (``jax_port.step_gemm.gflops``; its step
    rule: 32 dependent steps per timing on an accelerator)."""
    from unirep_port.jax_port import step_gemm

    return step_gemm.gflops(hidden, batch, prec, rounds=rounds)


def peak_gflops(prec: str, n: int = 8192, rounds: int = 5) -> float:
    import jax
    import jax.numpy as jnp

    from unirep_port.jax_port import step_gemm

    dt = jnp.bfloat16 if prec == "bf16" else jnp.float32
    p = {"highest": "highest", "tf32": "tensorfloat32", "bf16": "default"}[prec]
    a = jnp.ones((n, n), dt)
    f = jax.jit(lambda a: jnp.dot(a, a, precision=p, preferred_element_type=jnp.float32))
    jax.block_until_ready(f(a))  # compile and warm
    t = step_gemm.median_s(
        step_gemm.interleaved({"square": lambda: jax.block_until_ready(f(a))}, rounds)
    )
    return 2 * n**3 / t["square"] / 1e9


def part_gemm(res: dict, small: bool) -> None:
    hid = 256 if small else 1900
    res["gemm"] = {"hidden": hid, "step_shapes": {}, "peak_square": {}}
    for prec in _precs():
        res["gemm"]["peak_square"][prec] = peak_gflops(prec, 512 if small else 8192)
        for b in (64, 1024, 4096):
            res["gemm"]["step_shapes"][f"{prec}/B{b}"] = gemm_gflops(hid, b, prec)


def part_matrix(res: dict, small: bool) -> None:
    from unirep_port import jax_port
    from unirep_port.benchmarks.harness import flops_per_token
    from unirep_port.weights.random import random_params

    size = 256 if small else 1900
    params = jax_port.load_params(random_params(size, seed=0))
    fpt = flops_per_token(size)
    work = [(64, 238), (1024, 238), (4096, 100)] if not small else [(16, 20), (64, 20)]
    rows = []
    for n, length in work:
        seqs = _seqs(n, length, seed=n)
        for prec in _precs():
            t = time.perf_counter()
            jax_port.get_reps(seqs, params, precision=prec, batch_size=n)
            compile_s = time.perf_counter() - t
            warm = []
            for _ in range(3):
                t = time.perf_counter()
                jax_port.get_reps(seqs, params, precision=prec, batch_size=n)
                warm.append(time.perf_counter() - t)
            tok_s = n * (length + 1) / statistics.median(warm)
            g = res.get("gemm", {}).get("step_shapes", {}).get(f"{prec}/B{n}")
            rows.append(
                {
                    "size": size,
                    "n": n,
                    "length": length,
                    "precision": prec,
                    "plan": jax_port.engine.last_plan().used,
                    "compile_s": compile_s,
                    "warm_s": warm,
                    "tokens_per_s": tok_s,
                    "gemm_gflops_same_precision": g,
                    "fraction_of_gemm": tok_s * fpt / 1e9 / g if g else None,
                }
            )
            res["matrix"] = rows
            _write(res)


def part_errors(res: dict, small: bool) -> None:
    from unirep_port import jax_port, weights
    from unirep_port.parity.oracle import oracle_outputs

    out = {}
    for size in (64, 256):
        canon = weights.load_published(size)
        params = jax_port.load_params(canon)
        seqs = _seqs(64 if small else 256, 238, seed=7)
        reps = {p: jax_port.get_reps(seqs, params, precision=p) for p in _precs()}
        few = seqs[:4]
        exact = oracle_outputs(canon, few, size)
        d = {}
        for prec in _precs():
            for k, name in enumerate(("h_avg", "h_final", "c_final")):
                got = reps[prec][k]
                d[f"{prec}/{name}/vs_highest_max"] = float(np.abs(got - reps["highest"][k]).max())
                ref = getattr(exact, name)
                d[f"{prec}/{name}/vs_f64_max_4seqs"] = float(np.abs(got[:4] - ref).max())
        out[str(size)] = d
        res["errors"] = out
        _write(res)


def _sh(cmd, env=None, timeout: int = 150) -> dict:
    """Run ``cmd`` (a shell string, or an argv list run without a shell); rc, seconds, tail."""
    t = time.perf_counter()
    try:
        p = subprocess.run(
            cmd,
            shell=isinstance(cmd, str),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        rc, tail = p.returncode, (p.stdout + p.stderr)[-1500:]
    except subprocess.TimeoutExpired as exc:
        rc, tail = 124, f"timeout after {timeout} s: {str(exc.stdout)[-800:]}"
    return {"cmd": cmd, "rc": rc, "seconds": time.perf_counter() - t, "tail": tail}


def part_host_cpu(res: dict, small: bool, budget: float) -> None:
    from unirep_port.jax_port import precision

    host = {"lscpu_model": _sh("lscpu | grep -i 'model name'")["tail"].strip()}
    host["bf16_path"] = precision.cpu_bf16_path()
    host["nproc"] = os.cpu_count()
    res["host_cpu"] = host
    _write(res)
    # The golden test writes a parity report: keep it out of the working tree.
    report_dir = tempfile.mkdtemp(prefix="golden-report-")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PARITY_REPORT_DIR=report_dir)
    test = (
        f"{sys.executable} -m pytest parity_tests/test_golden.py -q -p no:cacheprovider "
        '-k "port_matches_golden and not 1900"'
    )
    n = os.cpu_count() or 2
    half = f"0-{max(n // 2 - 1, 0)}"
    rest = f"{min(n // 2 + 1, n - 1)}-{n - 1}"
    variants = {  # run side by side on disjoint cores: the three take the time of one
        f"cores_{half}": (f"taskset -c {half} {test}", env),
        "one_core": (f"taskset -c {n // 2} {test}", env),
        f"isa_avx2_cores_{rest}": (
            f"taskset -c {rest} {test}",
            dict(env, XLA_FLAGS="--xla_cpu_max_isa=AVX2"),
        ),
    }
    left = max(budget - (time.perf_counter() - T0), 60)
    procs = {
        k: (
            subprocess.Popen(
                c,
                shell=True,
                env=e,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            ),
            c,
            time.perf_counter(),
        )
        for k, (c, e) in variants.items()
    }
    host["golden"] = {}
    for k, (p, c, t) in procs.items():
        try:
            out, _ = p.communicate(timeout=max(left - (time.perf_counter() - t), 5))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, rc = (p.communicate()[0] or "") + "\n[killed: over budget]", 124
        host["golden"][k] = {
            "cmd": c,
            "rc": rc,
            "seconds": time.perf_counter() - t,
            "tail": (out or "")[-1200:],
        }
        _write(res)
    if time.perf_counter() - T0 > budget:
        host["fast_vs_highest"] = {"skipped": "over budget"}
        return
    code = (
        "import json,time,statistics,numpy as np,jax_port;"
        "from weights.random import random_params;"
        "from benchmarks.device_fastmode import _seqs;"
        f"p=jax_port.load_params(random_params({256 if small else 1900}));s=_seqs(64,238);r={{}}\n"
        "for q in ('highest','fast')*2:\n"
        " t=time.perf_counter();jax_port.get_reps(s,p,precision=q);r.setdefault(q,[]).append("
        "time.perf_counter()-t)\n"
        "print(json.dumps({'seconds':r,'fast_plan':jax_port.engine.last_plan().used}))"
    )
    host["fast_vs_highest"] = _sh([sys.executable, "-c", code], env, timeout=150)
    _write(res)


_OUT: list[Path] = []


def _write(res: dict) -> None:
    res["elapsed_s"] = time.perf_counter() - T0
    with atomic_file(_OUT[0], mode=0o644) as tmp:
        tmp.write_text(json.dumps(res, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=420)
    ap.add_argument("--small", action="store_true", help="small shapes (a CPU dry run)")
    ap.add_argument("--parts", default="gemm,matrix,errors,host_cpu")
    a = ap.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    _OUT.append(Path(a.out) / "device-fastmode.json")
    import jax

    dev = jax.local_devices()[0]
    res: dict = {
        "device": {
            "kind": dev.device_kind,
            "platform": dev.platform,
            "compute_capability": getattr(dev, "compute_capability", None),
            "count": jax.local_device_count(),
        },
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "small": a.small,
        "errors_by_part": {},
    }
    _write(res)
    fns = {
        "gemm": lambda: part_gemm(res, a.small),
        "matrix": lambda: part_matrix(res, a.small),
        "errors": lambda: part_errors(res, a.small),
        "host_cpu": lambda: part_host_cpu(res, a.small, a.budget_s),
    }
    for name in a.parts.split(","):
        if time.perf_counter() - T0 > a.budget_s and name != "host_cpu":
            res["errors_by_part"][name] = "skipped: over budget"
            continue
        try:
            fns[name]()
        except Exception:  # one part's failure must not lose the others
            res["errors_by_part"][name] = traceback.format_exc()[-2000:]
        _write(res)
        print(f"[{time.perf_counter() - T0:.0f} s] {name} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
