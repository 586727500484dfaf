"""``jax_port.step_gemm``: the one GEMM timing loop computes the step loop it is credited with,
and no other module times a GEMM loop of its own.

Expected values: the same loop in float64 NumPy on the same seeded arrays (float32 HIGHEST
products of 16-wide rows agree with it to float32 rounding, ``rtol=1e-5``: 16-term sums of
float32 products, a few ulp of 2**-24 each, over 4 steps).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from tolerance import GEMM_STEPS, assert_close

from unirep_port.jax_port import step_gemm

ROOT = Path(__file__).resolve().parents[1]


def _reference(x, w4, w1, steps):
    y = x.astype(np.float64)
    for _ in range(steps):
        z = (y @ w4)[:, : x.shape[1]]
        y = y + (z if w1 is None else z * (y @ w1))  # (B, H) float64
    return y


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("with_w1", [False, True])
def test_the_loop_computes_the_dependent_steps(transposed, with_w1):
    h, b, steps = 16, 3, 4
    x0, w4, w1 = step_gemm.step_arrays(h, b)
    w1 = w1 if with_w1 else None
    got = np.asarray(step_gemm.loop(x0, w4, w1, steps, "highest", transposed)(), np.float64)
    assert_close(got, _reference(x0, w4, w1, steps), GEMM_STEPS, "loop")


def test_one_step_rule_and_flop_count():
    assert step_gemm.steps_for(1900, 1) == 64 and step_gemm.steps_for(1900, 256) == 2
    assert step_gemm.steps_for(256, 64) == 64 and step_gemm.steps_for(1900, 4096, "gpu") == 32
    # (B, H) . (H, 4H) and (B, H) . (H, H): 2 * B * H * 5H per step
    assert step_gemm.flops(8, 2, 3) == 3 * 2 * 2 * 5 * 8 * 8
    assert step_gemm.flops(8, 2, 3, with_w1=False) == 3 * 2 * 2 * 4 * 8 * 8
    assert step_gemm.gflops(16, 2, rounds=1, steps=2) > 0


def _fori_loop_users(paths) -> list[str]:
    """Files that call ``fori_loop`` (the compiled loop a GEMM timing needs)."""
    out = []
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name == "fori_loop":
                    out.append(p.name)
                    break
    return out


def test_no_second_gemm_timing_loop(tmp_path):
    """The benchmarks and the fast-mode probe time ``step_gemm.loop``; nothing else in the
    package compiles a loop of its own (issue 29: four copies, their step rules drifted)."""
    shipped = [
        p
        for d in ("jax_port", "benchmarks", "parity_tests", "src", "cli", "embedding", "porting")
        for p in (ROOT / d).rglob("*.py")
        if "tests" not in p.relative_to(ROOT).parts
    ]
    assert _fori_loop_users(shipped) == ["step_gemm.py"]
    probe = tmp_path / "mine.py"
    probe.write_text("import jax\nf = lambda x: jax.lax.fori_loop(0, 4, lambda i, x: x, x)\n")
    assert _fori_loop_users([probe]) == ["mine.py"]
