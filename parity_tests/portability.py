"""Portability matrix: do the suite's verdicts hold under other thread counts, kernels and batches?

``python -m unirep_port.parity.portability [-o DIR] [--sizes ...] [--only NAME ...] [--full]``
runs each setting of :func:`settings` in a fresh process (``parity.portability_worker``) whose
environment and CPU affinity are the setting, and writes ``portability.json`` and
``portability.md`` to ``DIR`` (default: ``parity_tests/results/``, or ``$PARITY_REPORT_DIR``).
A CI runner pool mixes CPUs; on one machine the same variation comes from these knobs:

* threads: 1 (``taskset`` to one CPU, TF intra/inter-op threads 1, XLA's Eigen pool off with
  ``--xla_cpu_multi_thread_eigen=false``), 2, and all (the default). Where the machine has only
  two CPUs, "2" is "all" and is run once.
* TensorFlow's oneDNN kernels off (``TF_ENABLE_ONEDNN_OPTS=0``; on is TF's default on x86-64
  Linux, which the worker reads back), and capped to ``ONEDNN_MAX_CPU_ISA=AVX2`` / ``AVX512_CORE``.
* XLA's code generation capped with ``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` / ``SSE4_2`` (jax
  0.10.2; checked by dumping the compiled code: ``zmm`` registers by default on an AVX-512 CPU,
  ``ymm`` with FMA under AVX2, ``xmm`` without FMA under SSE4_2).
* batch composition of the port (each setting): every sequence alone, two rows, the full batch.

Per setting and size it records the verdicts of the suite's own checks -- the port against the
stored goldens (``golden.golden_check``; ``compare.compare``'s fixed triage reported beside it), the
live check on the live panel (``engine.run_parity``, which ``weights validate`` runs) and the golden
drift alarm on the reference's outputs now (``golden.drift_alarm``) -- and the largest deviations:
reference now from the goldens, port from the goldens, port and reference from the baseline
setting's (bitwise equal or by how much). The baseline runs twice; its two runs must agree bit for
bit (reproducibility). No number here is a tolerance: the verdicts are the suite's, with the suite's
bounds.

The drift alarm runs in this (parent) process on each distinct set of reference outputs the
workers saved; outputs bitwise equal to the goldens pass it by definition (their deviation is 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

SIZES = (64, 256, 1900)
# Variables a setting controls: removed from the inherited environment first, so the baseline is
# the library defaults whatever the caller's shell had set.
CONTROLLED = (
    "TF_ENABLE_ONEDNN_OPTS",
    "ONEDNN_MAX_CPU_ISA",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)
WORKER_TIMEOUT_S = 900


@dataclass(frozen=True)
class Setting:
    name: str
    what: str  # one line for the table
    env: dict = field(default_factory=dict)
    cpus: tuple[int, ...] | None = None  # CPU affinity (taskset); None: inherited
    sizes: tuple[int, ...] = SIZES  # 1900 is run in a few settings only (it is slow)


def _threads(n: int) -> dict:
    env = {
        "TF_NUM_INTRAOP_THREADS": str(n),
        "TF_NUM_INTEROP_THREADS": str(n),
        "OMP_NUM_THREADS": str(n),
        "OPENBLAS_NUM_THREADS": str(n),
    }
    if n == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    return env


def settings(cpus: tuple[int, ...] | None = None, full: bool = False) -> list[Setting]:
    """The matrix for a machine whose usable CPUs are ``cpus`` (default: this process's).

    64 and 256 run in every setting; the slow 1900 model in the baseline (twice) and with one
    thread, and with ``full`` also under the two caps that change a kernel on an AVX-512 CPU
    (oneDNN SSE4.1: no FMA in TF's sgemm; XLA SSE4.2: no FMA in the port's fusions).
    """
    cpus = tuple(sorted(cpus if cpus is not None else os.sched_getaffinity(0)))
    every, small = SIZES, (64, 256)
    capped = every if full else small

    def env(name: str, what: str, var: str, value: str, sizes=small) -> Setting:
        return Setting(name, what, {var: value}, None, sizes)

    out = [
        Setting("baseline", f"defaults, all {len(cpus)} CPUs", {}, None, every),
        Setting("baseline-repeat", "the baseline again", {}, None, every),
        Setting("threads-1", "1 CPU, 1 thread (TF and XLA)", _threads(1), cpus[:1], every),
    ]
    if len(cpus) > 2:  # with two CPUs, "2" is "all": the baseline
        out.append(Setting("threads-2", "2 CPUs, 2 threads", _threads(2), cpus[:2], small))
    out += [
        env("onednn-off", "TF_ENABLE_ONEDNN_OPTS=0", "TF_ENABLE_ONEDNN_OPTS", "0"),
        env(
            "onednn-avx512core",
            "ONEDNN_MAX_CPU_ISA=AVX512_CORE",
            "ONEDNN_MAX_CPU_ISA",
            "AVX512_CORE",
        ),
        env("onednn-avx2", "ONEDNN_MAX_CPU_ISA=AVX2", "ONEDNN_MAX_CPU_ISA", "AVX2"),
        env("onednn-sse41", "ONEDNN_MAX_CPU_ISA=SSE41", "ONEDNN_MAX_CPU_ISA", "SSE41", capped),
        env("xla-avx2", "XLA --xla_cpu_max_isa=AVX2", "XLA_FLAGS", "--xla_cpu_max_isa=AVX2"),
        env(
            "xla-sse4_2",
            "XLA --xla_cpu_max_isa=SSE4_2",
            "XLA_FLAGS",
            "--xla_cpu_max_isa=SSE4_2",
            capped,
        ),
    ]
    return out


def worker_env(setting: Setting, base: dict | None = None) -> dict:
    """The inherited environment without :data:`CONTROLLED`, plus the setting's variables."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in CONTROLLED}
    env.update(setting.env)
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_setting(setting: Setting, sizes, workdir: Path) -> dict:
    """Run one setting's worker in a fresh process; its record (raises naming the setting)."""
    sizes = [s for s in setting.sizes if s in sizes]
    spec = workdir / f"{setting.name}.spec.json"
    spec.write_text(json.dumps({"dir": str(workdir), "name": setting.name, "sizes": sizes}))
    cmd = [sys.executable, "-m", "unirep_port.parity.portability_worker", str(spec)]
    if setting.cpus is not None:
        if shutil.which("taskset") is None:
            raise RuntimeError(f"setting {setting.name!r} needs taskset (util-linux) on PATH")
        cmd = ["taskset", "-c", ",".join(map(str, setting.cpus)), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        env=worker_env(setting),
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"portability setting {setting.name!r} ({setting.what}) failed with exit code "
            f"{proc.returncode}; its stderr ends:\n{proc.stderr[-3000:]}"
        )
    rec = json.loads((workdir / f"{setting.name}.json").read_text())
    rec["what"], rec["requested_env"], rec["requested_cpus"] = (
        setting.what,
        setting.env,
        setting.cpus,
    )
    rec["wall_s"] = time.perf_counter() - t0
    _check_applied(setting, rec["observed"])
    return rec


def _check_applied(setting: Setting, observed: dict) -> None:
    """The worker ran under the setting it was given, or the matrix measures nothing."""
    if setting.cpus is not None and tuple(observed["cpus"]) != tuple(setting.cpus):
        raise RuntimeError(
            f"setting {setting.name!r}: worker ran on CPUs {observed['cpus']}, not {setting.cpus}"
        )
    for key, value in setting.env.items():
        if observed["env"].get(key, value) != value:
            raise RuntimeError(
                f"setting {setting.name!r}: worker saw {key}={observed['env'].get(key)!r}, "
                f"not {value!r}"
            )


def _load(workdir: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(workdir / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _diff(a: dict, b: dict, prefix: str) -> dict:
    """Bitwise equality, and per output the largest deviation (``compare.error_of``) of b from a.

    Keys under ``prefix`` end in the output's name (``hs_3``, ``logits_0``, ``h_avg``...).
    """
    from unirep_port.parity.compare import error_of

    keys = sorted(k for k in a if k.startswith(prefix))
    if not keys or any(k not in b or a[k].shape != b[k].shape for k in keys):
        return {"bitwise_equal": False, "max_dev": {"shape": float("inf")}}
    dev: dict[str, float] = {}
    for k in keys:
        name = re.sub(r"_\d+$", "", k.rsplit("/", 1)[-1])  # hs_3 -> hs; h_avg stays
        d = float(error_of(name, a[k], b[k]).max()) if a[k].size else 0.0
        dev[name] = max(dev.get(name, 0.0), d)
    return {"bitwise_equal": all(np.array_equal(a[k], b[k]) for k in keys), "max_dev": dev}


def _h(dev: dict) -> float:
    """Largest deviation of a hidden-state output (hs, h_avg, h_final) in ``dev``."""
    return max((v for k, v in dev.items() if k in ("hs", "h_avg", "h_final")), default=0.0)


def _get(dev: dict, name: str) -> float:
    return dev.get(name, 0.0)


def _outputs_of(arrays: dict, prefix: str, n: int):
    from unirep_port.parity.compare import Outputs

    return Outputs(
        hs=[arrays[f"{prefix}/hs_{i}"] for i in range(n)],
        logits=[arrays[f"{prefix}/logits_{i}"] for i in range(n)],
        h_avg=arrays[f"{prefix}/h_avg"],
        h_final=arrays[f"{prefix}/h_final"],
        c_final=arrays[f"{prefix}/c_final"],
    )


def _alarm(size: int, arrays: dict, rec: dict, cache: dict) -> dict:
    """The suite's drift alarm on this setting's reference outputs (once per distinct output)."""
    if rec["tf_equals_golden"]:
        return {"ok": True, "ran": False, "why": "reference outputs bitwise equal to the goldens"}
    return _golden_verdict(size, arrays, rec, cache, "tf_golden")


def _port_check(size: int, arrays: dict, rec: dict, cache: dict) -> dict:
    """The suite's verdict on the port against the goldens (``golden.golden_check``)."""
    return _golden_verdict(size, arrays, rec, cache, "port_golden")


def _golden_verdict(size: int, arrays: dict, rec: dict, cache: dict, kind: str) -> dict:
    """``golden.golden_check`` on the outputs stored under ``<size>/<kind>``, once per distinct
    output (its witness scales are computed once per size and kept by ``golden``)."""
    prefix = f"{size}/{kind}/"
    digest = hashlib.sha256()
    for k in sorted(k for k in arrays if k.startswith(prefix)):
        digest.update(k.encode() + arrays[k].tobytes())
    key = (size, kind, digest.hexdigest())
    if key not in cache:
        from unirep_port.parity.golden import golden_check

        outputs = _outputs_of(arrays, prefix[:-1], len(rec["golden_panel"]))
        check = golden_check(size, outputs)
        cache[key] = {"ok": check.ok, "ran": True, **check.summary(), "failures": check.failures()}
    return cache[key]


def aggregate(records: list[dict], workdir: Path) -> dict:
    """Cross-setting comparisons and verdicts; ``records[0]`` is the baseline."""
    base_name = records[0]["name"]
    base = _load(workdir, base_name)
    cache: dict = {}
    rows = []
    for rec in records:
        arrays = base if rec["name"] == base_name else _load(workdir, rec["name"])
        for size_s, r in rec["sizes"].items():
            rows.append(_row(rec, int(size_s), r, arrays, base, cache))
    repeat = [r for r in rows if r["setting"] == "baseline-repeat"]
    # None when the repeat was not run (``--only``): nothing was measured, nothing claimed.
    reproducible = (
        all(r["port_bitwise_baseline"] and r["tf_bitwise_baseline"] for r in repeat)
        if repeat
        else None
    )
    ok = all(r["ok"] for r in rows) and reproducible is not False
    return {
        "ok": ok,
        "reproducible": reproducible,
        "rows": rows,
        "settings": [
            {
                k: rec[k]
                for k in ("name", "what", "requested_env", "requested_cpus", "observed", "wall_s")
            }
            for rec in records
        ],
        "summary": summarize(rows, reproducible),
    }


def _row(rec: dict, size: int, r: dict, arrays, base, cache: dict) -> dict:
    """One setting's row for one size: its checks, its deviations against the golden files,
    the live reference and the baseline setting (``base``), and the detail behind them."""
    alarm = _alarm(size, arrays, r, cache)
    port_check = _port_check(size, arrays, r, cache)
    vs_base = {
        kind: _diff(base, arrays, f"{size}/{kind}/")
        for kind in (
            "tf_golden",
            "tf_live",
            "port_golden",
            *(f"port_live_{c}" for c in r["compositions"]),
        )
    }
    comp = r["compositions"]
    return {
        "setting": rec["name"],
        "what": rec["what"],
        "size": size,
        "ok": bool(port_check["ok"] and r["live"]["ok"] and alarm["ok"]),
        "port_vs_golden_ok": port_check["ok"],
        "port_within_triage": r["port_vs_golden"]["ok"],
        "live_ok": r["live"]["ok"],
        "alarm_ok": alarm["ok"],
        "tf_vs_golden_h": _h(r["tf_vs_golden"]),
        "tf_vs_golden_logits": _get(r["tf_vs_golden"], "logits"),
        "port_vs_golden_h": _h(r["port_vs_golden"]["max_dev"]),
        "port_vs_golden_logits": _get(r["port_vs_golden"]["max_dev"], "logits"),
        "live_h": _h(r["live"]["max_dev"]),
        "live_logits": _get(r["live"]["max_dev"], "logits"),
        "live_excused": sum(r["live"]["n_excused"].values()),
        "tf_vs_baseline_h": max(_h(vs_base[k]["max_dev"]) for k in ("tf_golden", "tf_live")),
        "tf_bitwise_baseline": vs_base["tf_golden"]["bitwise_equal"]
        and vs_base["tf_live"]["bitwise_equal"],
        "port_vs_baseline_h": max(
            _h(v["max_dev"]) for k, v in vs_base.items() if k.startswith("port")
        ),
        "port_bitwise_baseline": all(
            v["bitwise_equal"] for k, v in vs_base.items() if k.startswith("port")
        ),
        "alone_vs_full_h": _h(comp["alone"]["vs_full_batch"]),
        "two_rows_vs_full_h": _h(comp["two_rows"]["vs_full_batch"]),
        "alone_vs_tf_h": _h(comp["alone"]["vs_tf"]),
        "full_vs_tf_h": _h(comp["full_batch"]["vs_tf"]),
        "detail": {
            "record": r,
            "alarm": alarm,
            "port_check": port_check,
            "vs_baseline": vs_base,
        },
    }


def summarize(rows: list[dict], reproducible: bool) -> dict:
    """The headline numbers: largest deviation each kind of change produced, and where."""

    def worst(key: str, pick) -> dict:
        chosen = [r for r in rows if pick(r)]
        if not chosen:
            return {}
        r = max(chosen, key=lambda r: r[key])
        return {"max": r[key], "setting": r["setting"], "size": r["size"]}

    return {
        "settings": len({r["setting"] for r in rows}),
        "failed": [f"{r['setting']}/{r['size']}" for r in rows if not r["ok"]],
        "reproducible_run_to_run": reproducible,
        **{
            key: worst(key, lambda r: True)
            for key in (
                "tf_vs_golden_h",
                "tf_vs_golden_logits",
                "port_vs_golden_h",
                "port_vs_golden_logits",
                "live_h",
                "live_logits",
                "tf_vs_baseline_h",
                "port_vs_baseline_h",
                "alone_vs_full_h",
                "two_rows_vs_full_h",
            )
        },
    }


def _num(x: float, bitwise: bool | None = None) -> str:
    if bitwise:
        return "0 (bitwise)"
    return "0" if x == 0 else f"{x:.2g}"


def _verdict(r: dict) -> str:
    failed = [
        n
        for n, k in (("golden", "port_vs_golden_ok"), ("live", "live_ok"), ("alarm", "alarm_ok"))
        if not r[k]
    ]
    text = "pass" if not failed else "FAIL: " + ", ".join(failed)
    alarm = r["detail"]["alarm"]
    if alarm.get("ran"):
        text += f" (alarm ran: {max(alarm['max_ratio'].values()):.2g} of its bound)"
    return text


def markdown(result: dict) -> str:
    """One row per setting and size; h = largest of hs, h_avg, h_final; lg = logits."""
    lines = [
        "| setting | size | verdicts | TF vs golden h / lg | port vs golden h / lg "
        "| live: port vs TF h / lg | TF vs baseline h | port vs baseline h "
        "| port reps alone vs full batch | 2 rows vs full |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['setting']} ({r['what']}) | {r['size']} | {_verdict(r)} "
            f"| {_num(r['tf_vs_golden_h'])} / {_num(r['tf_vs_golden_logits'])} "
            f"| {_num(r['port_vs_golden_h'])} / {_num(r['port_vs_golden_logits'])} "
            f"| {_num(r['live_h'])} / {_num(r['live_logits'])} "
            f"| {_num(r['tf_vs_baseline_h'], r['tf_bitwise_baseline'])} "
            f"| {_num(r['port_vs_baseline_h'], r['port_bitwise_baseline'])} "
            f"| {_num(r['alone_vs_full_h'])} | {_num(r['two_rows_vs_full_h'])} |"
        )
    s = result["summary"]
    repro = {True: "bitwise identical", False: "NOT bitwise identical", None: "not run"}
    lines += [
        "",
        f"Verdict: {'PASS' if result['ok'] else 'FAIL'}; the baseline run twice: "
        f"{repro[s['reproducible_run_to_run']]}. Deviations as `compare.error_of` measures them "
        '(absolute; c_final, in the JSON, relative to the row\'s largest |c|); "0 (bitwise)": '
        "equal bit for bit. Matrix time: " + f"{result.get('seconds', 0):.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def run_matrix(
    sizes=SIZES,
    out_dir: Path | None = None,
    only: list[str] | None = None,
    full: bool = False,
    large_only_in: tuple[str, ...] | None = None,
    jobs: int = 2,
) -> dict:
    """Run the matrix; write ``portability.json``/``.md`` to ``out_dir``; return the result.

    ``large_only_in``: settings that keep the 1900 model (None: as :func:`settings` says); the
    gate runs it in the baseline and its repeat only. ``jobs``: settings run at once, each in its
    own process (the records keep the settings' order).
    """
    from unirep_port.parity.paths import results_dir

    chosen = settings(full=full)
    names = [s.name for s in chosen]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; known: {names}")
        chosen = [s for s in chosen if s.name == "baseline" or s.name in only]
    if large_only_in is not None:
        chosen = [
            s
            if s.name in large_only_in
            else replace(s, sizes=tuple(z for z in s.sizes if z != 1900))
            for s in chosen
        ]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise ValueError(f"unknown model size(s) {bad}; known: {list(SIZES)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="portability-") as tmp:

        def one(s: Setting) -> dict:
            print(f"portability: {s.name} ({s.what}) ...", file=sys.stderr, flush=True)
            return run_setting(s, sizes, Path(tmp))

        # Workers are separate processes: running two at once changes no number (each keeps its
        # own thread count, kernels and CPUs; the baseline and its repeat are still compared bit
        # for bit), it only overlaps one worker's imports and Python with another's kernels.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            records = list(pool.map(one, chosen))
        result = aggregate(records, Path(tmp))
    result["seconds"] = time.perf_counter() - t0
    out_dir = Path(out_dir) if out_dir is not None else results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "portability.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (out_dir / "portability.md").write_text(markdown(result))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "-o", "--output", default=None, help="directory (default: parity_tests/results/)"
    )
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), choices=list(SIZES))
    p.add_argument("--only", nargs="+", default=None, help="settings to run besides the baseline")
    p.add_argument("--full", action="store_true", help="run 1900 under the ISA caps too (slow)")
    p.add_argument("--jobs", type=int, default=2, help="settings run at once (default 2)")
    args = p.parse_args(argv)
    result = run_matrix(args.sizes, args.output, args.only, args.full, jobs=args.jobs)
    print(markdown(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
