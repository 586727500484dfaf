"""Memory of one evotuning loss+gradient versus sequence length, with and without remat.

For each length L the function ``value_and_grad(jax_port.evotune.loss)`` of the 1900 model on a
(batch, L + 1) batch is lowered and compiled (never run), and XLA's own buffer assignment is read
from ``compiled.memory_analysis()``: ``temp`` is the scratch the backward pass needs (saved
activations), ``peak`` adds the arguments and outputs. Cheap: compiling only, no training.

    python -m unirep_port.benchmarks.evotune_memory [--size 1900] [--batches 1 16] [--lengths 250 500 1000 2000]

Writes ``benchmarks/results/evotune-memory.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port.jax_port.evotune_loss import DEFAULT_BLOCK, loss
from unirep_port.jax_port.params import from_canonical
from unirep_port.sizes import expected_shapes

MiB = 2**20


def abstract_params(size: int):
    """The model's parameter pytree as ``ShapeDtypeStruct`` leaves (no weights are needed)."""
    zeros = {k: np.zeros(s, np.float32) for k, s in expected_shapes(size).items()}
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), from_canonical(zeros))


def measure(size: int, batch: int, length: int, remat: bool, block: int) -> dict:
    """Compile loss+grad for ``batch`` sequences of ``length`` residues and read its memory."""
    t = length + 1  # loss positions: start token + residues as inputs
    tok = jax.ShapeDtypeStruct((batch, t), jnp.int32)
    mask = jax.ShapeDtypeStruct((batch, t), jnp.float32)

    def f(p, x, y, m):
        return jax.value_and_grad(loss)(p, x, y, m, remat=remat, block=block)

    t0 = time.perf_counter()
    compiled = jax.jit(f).lower(abstract_params(size), tok, tok, mask).compile()
    seconds = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    temp = int(ma.temp_size_in_bytes)
    args = int(ma.argument_size_in_bytes)
    out = int(ma.output_size_in_bytes)
    return {
        "size": size,
        "batch": batch,
        "length": length,
        "remat": remat,
        "block": block if remat else None,
        "temp_bytes": temp,
        "argument_bytes": args,
        "output_bytes": out,
        "peak_bytes": temp + args + out,
        "temp_mib": temp / MiB,
        "peak_mib": (temp + args + out) / MiB,
        "compile_s": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1900, choices=(1900, 256, 64))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--block", type=int, default=DEFAULT_BLOCK)
    ap.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000, 2000])
    ap.add_argument(
        "--output", default=None, help="JSON path (default results/evotune-memory.json)"
    )
    args = ap.parse_args(argv)

    from unirep_port.benchmarks.harness import RESULTS_DIR, write_results

    records = []
    head = f"{'batch':>5} {'length':>7} {'remat':>6} {'temp MiB':>10} {'peak MiB':>10}"
    head += f" {'compile s':>9}"
    print(head)
    for batch in args.batches:
        for length in args.lengths:
            for remat in (False, True):
                r = measure(args.size, batch, length, remat, args.block)
                records.append(r)
                print(
                    f"{batch:>5} {length:>7} {remat!s:>6} {r['temp_mib']:>10.1f} "
                    f"{r['peak_mib']:>10.1f} {r['compile_s']:>9.1f}",
                    flush=True,
                )
    path = args.output or f"{RESULTS_DIR}/evotune-memory.json"
    print("wrote", write_results(records, jax.default_backend(), path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
