"""The tests' numeric tolerances, each stated once with where it comes from, and the comparison
that uses them (:func:`assert_close`: it names the worst position and the tolerance's source).

float32's unit roundoff is ``u32 = 2**-24`` (6.0e-8; an ulp of 1.0 is ``2 * u32`` = 1.19e-7).
Hidden states ``h = o * tanh(c)`` lie in (-1, 1), so an absolute tolerance on them is a number of
ulps of 1.0; the cell state ``c`` is not bounded by 1 and gets a relative part as well.

Where a source says "a margin, not derived", the number was chosen when its test was written and
is kept here unchanged; the parity suite's own bounds are derived at run time from float64
witnesses (``parity_tests/compare.py``, ``unirep_port.porting.drift``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tol:
    """``|got - want| <= atol + rtol * |want|`` elementwise, and why these numbers."""

    atol: float
    rtol: float
    source: str


BRIEF_H = Tol(
    1e-6,
    0.0,
    "the brief's parity bound for hidden states: a float32 path within 1e-6 (max abs) of its "
    "reference, about 8 float32 ulps of 1.0 (|h| < 1)",
)
SAME_MATH = Tol(
    1e-6,
    1e-7,
    "the same float32 computation by another path, batch or device of the port (the "
    "per-position path, a generator, two devices): at most a reordering's rounding, held to "
    "BRIEF_H's 1e-6; rtol is numpy's default, as the tests had it",
)
RUN_H = Tol(
    1e-5,
    0.0,
    "a float32 run over whole sequences (up to a few hundred tokens here) against float64 or "
    "another float32 implementation: each step's rounding is carried along the recurrence, so "
    "ten times BRIEF_H; a margin, not derived",
)
RUN_C = Tol(
    1e-5,
    1e-5,
    "RUN_H for the cell state c, which is not bounded by 1 (c = f*c + i*u accumulates): the "
    "same margin, relative as well; not derived",
)
RUN_LOGITS = Tol(
    1e-4,
    0.0,
    "RUN_H's hidden states carried through the dense layer (H -> 25): ten times RUN_H; a "
    "margin, not derived",
)
DENSE_F32 = Tol(
    1e-5,
    1e-7,
    "the same hidden states through the dense layer as two float32 products (XLA's, NumPy's): "
    "only the dot products' rounding differs, at most H * u32 times each one's absolute terms "
    "(3.8e-6 of them for H = 64); rtol is numpy's default, as the test had it",
)

GEMM_STEPS = Tol(
    1e-6,
    1e-5,
    "a few dependent float32 matmul steps (16 wide, 4 steps) against float64: each product's "
    "rounding is at most K * u32 of its terms' absolute sum (K = 16 terms: 9.5e-7), carried "
    "over the steps; a margin above that, not derived",
)
MEAN_F32 = Tol(
    1e-7,
    1e-6,
    "a float32 mean over a sequence's positions summed in two orders: each order's rounding is "
    "at most L * u32 relative (L <= a few hundred positions); a margin, not derived",
)
F64_ROWS = Tol(
    1e-12,
    0.0,
    "float64 rows of the same math on fewer batch rows: only the order of a row's float64 sums "
    "may change with the batch shape (u64 = 1.1e-16 per rounding); a margin, not derived",
)
F64_FORMULA = Tol(
    1e-12,
    1e-10,
    "the same float64 formula computed by two libraries (torch's weight norm, NumPy's): a few "
    "float64 roundings (u64 = 1.1e-16) per entry; a wide margin, not derived",
)
GRAD_ORDER = Tol(
    1e-6,
    0.0,
    "gradients of the same float32 loss by another schedule (rematerialised blocks, block size, "
    "the hand-written backward against JAX's differentiation): the same math summed in other "
    "orders; 1e-6 of the largest entry (pass it as scale), about 8 float32 ulps of it; a "
    "margin, not derived",
)
GRAD_VARIANT = Tol(
    1e-6,
    1e-4,
    "gradients of a replaced cell by the hand-written backward (it differentiates the cell's "
    "own functions with jax.vjp) against JAX's differentiation of the whole step: other orders "
    "and other intermediate roundings of the same math; a margin, not derived",
)

NO_CUT = Tol(
    1e-7,
    0.0,
    "a truncation window longer than the batch never cuts: the same gradient, the cut's "
    "selects keeping every value; 1e-7 absolute, about one float32 ulp of 1.0; a margin, not "
    "derived",
)


def assert_close(got, want, tol: Tol, what: str = "value", scale: float = 1.0) -> None:
    """Assert ``got`` equals ``want`` within ``tol`` (in float64), naming ``what``, the worst
    position, both values there and the tolerance's source when it does not. ``scale``
    multiplies ``atol`` (for a tolerance stated relative to the largest expected value)."""
    g = np.asarray(got, np.float64)
    w = np.asarray(want, np.float64)
    assert g.shape == w.shape, f"{what}: shape {g.shape}, expected {w.shape}"
    atol = tol.atol * float(scale)
    over = np.abs(g - w) - (atol + tol.rtol * np.abs(w))
    over = np.where(np.isnan(over), np.inf, over)  # NaN on either side is never close
    if over.size and over.max() > 0:
        pos = np.unravel_index(int(over.argmax()), over.shape)
        raise AssertionError(
            f"{what}: |got - want| over atol={atol:g} + rtol={tol.rtol:g}*|want| at "
            f"{tuple(int(p) for p in pos)}: got {g[pos]!r}, expected {w[pos]!r} "
            f"(max abs difference {np.nanmax(np.abs(g - w)):.3g}); tolerance: {tol.source}"
        )
