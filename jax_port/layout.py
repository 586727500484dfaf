"""Which layout the weight matrices take at a batch size: the one this machine multiplies faster.

The port keeps its matrices transposed, (n_out, n_in) (``out_in``), by default: XLA's CPU kernels
then contract along contiguous memory, faster for the wide model and at large batches, and at
one row far more accurate (``cell.matmul``). At a few rows of a narrow model the same kernels
can run the (n_in, n_out) layout much faster instead (the ``layout`` records of
``benchmarks/results/small-batch-matrix.json``), and which one wins depends on the CPU, the width
and the batch -- so it is measured, not written down: :func:`out_in` times the step's two GEMMs
(``step_gemm.loop``, both products, in both layouts, interleaved rounds) once per machine, width
and batch, and keeps the answer in the probe store (:mod:`jax_port.probes`).

Rules that are not timings:

* one row always stays ``out_in``: the (n_in, n_out) row-vector kernel sums each output in one
  sequential pass, several times less accurate on the 1900 model (``cell.matmul``);
* (n_in, n_out) must be at least :data:`MARGIN` times as fast, so timing noise never flips a
  shape whose layouts run alike (each flip changes the float32 summation order, hence the bits);
* accelerators keep ``out_in`` (their GEMM libraries take either layout at full speed).

A probe taken while the machine is busy with other work can misjudge a shape, and its answer is
kept: delete the store (:func:`jax_port.probes.store_file`) to measure again.

Both layouts compute the same products; the choice moves outputs within float32 rounding (the
batch-composition bound the parity suite derives), and a batch size always takes the same
layout on one machine, so a job's bits do not depend on whether it ran as one loop or in chunks.
"""

from __future__ import annotations

import statistics

from unirep_port.jax_port import probes, step_gemm

MARGIN = 1.15  # (n_in, n_out) must time >= 15% faster to be taken
ROUNDS = 5


def _by_rule(platform: str, batch: int) -> bool:
    """Where the transposed layout is kept without a probe (see the module docstring)."""
    return platform != "cpu" or batch < 2


def out_in(platform: str, hidden: int, batch: int) -> bool:
    """True: keep the matrices (n_out, n_in) at ``batch`` rows; False: (n_in, n_out)."""
    return _by_rule(platform, batch) or speedup(hidden, batch) < MARGIN


def decided(platform: str, hidden: int, batch: int) -> bool | None:
    """:func:`out_in`'s answer where it needs no timing (a rule, or a probe already taken on
    this machine: in memory or in the store), else None."""
    if _by_rule(platform, batch):
        return True
    rec = probes.known("layout", hidden, batch)
    return None if rec is None else float(rec["speedup"]) < MARGIN


def speedup(hidden: int, batch: int) -> float:
    """(n_in, n_out) over (n_out, n_in) speed of the step's GEMMs at ``batch`` rows (> 1: the
    (n_in, n_out) layout is faster), measured once per machine and shape."""

    def measure() -> dict:
        steps = step_gemm.steps_for(hidden, batch)
        if hidden >= 1024:  # a wide step is long enough to time in a few: keep the probe short
            steps = max(2, steps // 8)
        x0, w4, w1 = step_gemm.step_arrays(hidden, batch)
        fns = {
            t: step_gemm.loop(x0, w4, w1, steps, transposed=t == "out_in")
            for t in ("out_in", "in_out")
        }
        times = step_gemm.interleaved(fns, ROUNDS)
        med = step_gemm.median_s(times)
        return {
            "out_in_s": med["out_in"] / steps,
            "in_out_s": med["in_out"] / steps,
            # per round, the two layouts ran back to back: the median of their ratios is what a
            # change of machine load over the rounds moves least
            "speedup": statistics.median(a / b for a, b in zip(times["out_in"], times["in_out"])),
        }

    return float(probes.measured("layout", hidden, batch, measure)["speedup"])
