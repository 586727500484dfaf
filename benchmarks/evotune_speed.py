"""Evotuning training throughput: this port vs jax-unirep 3.0.0, same data, same process.

Per model size, ``batch`` seeded random sequences of ``length`` residues (one length, so
jax-unirep's length batching forms full batches without padding and this port's bucketing pads
nothing when ``length + 1`` is a bucket width, e.g. 127 or 255). Each implementation runs one
warm-up step (compilation) and then ``steps`` timed steps; the figure is real tokens (``length +
1`` per sequence) per second of a warm step.

* ``jax-port``: ``jax_port.evotune.train_step`` (Adam, remat blocks) on the published weights;
  ``jax-port-noremat`` the same without rematerialisation (memory grows with length);
  ``jax-port-autodiff`` with JAX's own scan gradient instead of ``evotune_rnn``'s backward.
* ``jax-unirep``: jax-unirep's own per-step work -- its public ``evotuning.evotune_loss`` under
  ``equinox.filter_value_and_grad`` and ``optax.adamw(weight_decay=0.01)``, jitted with
  ``equinox.filter_jit``, as its ``fit`` does each iteration -- on its own bundled weights
  (``load_model(paper_weights=size)``) and its own one-hot inputs (``utils.input_output_pairs``).
* with ``--fit``: also jax-unirep's end-to-end ``evotuning.fit`` for ``--fit-epochs`` epochs
  (compiles and its epoch logging included), as wall-clock tokens/s.

    python -m unirep_port.benchmarks.evotune_speed [--sizes 1900 256] [--batch 8] [--length 255] [--steps 5]

Writes ``benchmarks/results/evotune-speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import tempfile
import time

import jax
import numpy as np

from unirep_port.benchmarks.workloads import random_seqs


def _timed(step, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - t0)
    return times


def bench_port(
    size: int, seqs: list[str], steps: int, lr: float, remat: bool = True, fused: bool = True
) -> dict:
    """Warm-step throughput of ``jax_port.evotune.train_step`` on the published weights."""
    ev = importlib.import_module(
        "unirep_port.jax_port.evotune"
    )  # the module, not a re-exported evotune()
    from unirep_port.jax_port.params import load_params

    params = load_params(size)
    batch = ev.make_batch(seqs, width=ev.bucket_width(len(seqs[0]) + 1))
    state = {"p": params, "s": ev.init_opt_state(params, lr)}

    def step():
        state["p"], state["s"], value = ev.train_step(
            state["p"], state["s"], batch, remat=remat, fused=fused
        )
        return value

    t0 = time.perf_counter()
    jax.block_until_ready(step())
    first = time.perf_counter() - t0
    return {"first_step_s": first, "step_s": _timed(step, steps), "padded_width": batch[0].shape[1]}


def bench_jax_unirep(size: int, seqs: list[str], steps: int, lr: float) -> dict:
    """Warm-step throughput of jax-unirep 3.0.0's per-iteration evotuning work."""
    import equinox as eqx
    import optax
    from jax_unirep.evotuning import evotune_loss
    from jax_unirep.models import load_model
    from jax_unirep.utils import input_output_pairs

    model = load_model(paper_weights=size)
    x, y = input_output_pairs(seqs)  # one-hot, (B, L + 1, 26) and (B, L + 1, 25)
    optim = optax.adamw(learning_rate=lr, weight_decay=0.01)  # the optimiser fit() builds
    opt_state = optim.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def train(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(evotune_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    state = {"m": model, "s": opt_state}

    def step():
        state["m"], state["s"], value = train(state["m"], state["s"], x, y)
        return value

    t0 = time.perf_counter()
    jax.block_until_ready(step())
    first = time.perf_counter() - t0
    return {"first_step_s": first, "step_s": _timed(step, steps)}


def bench_jax_unirep_fit(size: int, seqs: list[str], epochs: int, lr: float) -> dict:
    """Wall-clock of jax-unirep's end-to-end ``fit`` (compiles, logging, weight dumps included)."""
    from jax_unirep.evotuning import fit
    from jax_unirep.models import load_model

    model = load_model(paper_weights=size)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # fit logs to ./evotuning.log
        t0 = time.perf_counter()
        fit(seqs, epochs, model, batch_size=len(seqs), step_size=lr, proj_name=tmp)
        wall = time.perf_counter() - t0
    return {"epochs": epochs, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1900, 256])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=255)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--impls", nargs="+", default=["jax-port", "jax-port-noremat", "jax-unirep"])
    ap.add_argument("--fit", action="store_true", help="also time jax-unirep's end-to-end fit")
    ap.add_argument("--fit-epochs", type=int, default=2)
    ap.add_argument("--output", default=None, help="JSON path (default results/evotune-speed.json)")
    args = ap.parse_args(argv)

    from unirep_port.benchmarks.harness import RESULTS_DIR, write_results

    seqs = random_seqs(args.batch, args.length, seed=0)
    tokens = args.batch * (args.length + 1)  # real loss positions per step
    runners = {
        "jax-port": bench_port,
        "jax-port-noremat": lambda *a: bench_port(*a, remat=False),
        "jax-port-autodiff": lambda *a: bench_port(*a, fused=False),
        "jax-unirep": bench_jax_unirep,
    }
    records = []
    for size in args.sizes:
        for impl in args.impls:
            r = runners[impl](size, seqs, args.steps, args.lr)
            med = float(np.median(r["step_s"]))
            rec = {
                "size": size, "impl": impl, "batch": args.batch, "length": args.length,
                "tokens_per_step": tokens, "median_step_s": med, "tokens_per_s": tokens / med,
                **r,
            }  # fmt: skip
            records.append(rec)
            print(
                f"{size:>5} {impl:<11} first step {r['first_step_s']:7.2f} s, warm step "
                f"{med:7.3f} s, {tokens / med:9.1f} tokens/s",
                flush=True,
            )
        if args.fit:
            r = bench_jax_unirep_fit(size, seqs, args.fit_epochs, args.lr)
            steps = args.fit_epochs  # fit(batch_size=len(seqs)): one step per epoch
            rate = steps * tokens / r["wall_s"]
            rec = {"size": size, "impl": "jax-unirep-fit", "batch": args.batch,
                   "length": args.length, "tokens_per_s": rate, **r}  # fmt: skip
            records.append(rec)
            print(f"{size:>5} jax-unirep fit (end to end) {rec['tokens_per_s']:9.1f} tokens/s")
    path = args.output or f"{RESULTS_DIR}/evotune-speed.json"
    print("wrote", write_results(records, jax.default_backend(), path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
