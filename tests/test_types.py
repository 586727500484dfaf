"""The jaxtyping annotations of ``jax_port`` are checked at runtime, not just written.

Each test runs a fresh Python in which ``jax_port`` is imported under
``jaxtyping.install_import_hook(..., "beartype.beartype")``: every function of the package is then
wrapped in ``jaxtyped(typechecker=beartype)``, so each call checks its arguments and result
against the shape aliases of ``jax_port.types`` (dimension names bound consistently across one
call: a (n_out, n_in) matrix annotated (n_in, n_out) fails). Under ``jit`` the checks run at
trace time on tracers. The subprocess keeps the hook out of every other test and out of
production imports (numerics and speed are untouched).

The script drives the public paths on seeded random weights: reps (host float64 preparation,
then the jitted engine with transposed matrices), per-position hidden states and logits, the
bf16-cast matrices of the "fast" mode, babbling, the differentiable ``forward``, and the evotune
loss with its gradient (fused and JAX-differentiated recurrences) and one Adam step. A negative
control checks that a wrong layout is actually rejected (the hook is live).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys
from pathlib import Path

import jaxtyping

with jaxtyping.install_import_hook("unirep_port.jax_port", "beartype.beartype"):
    from unirep_port import jax_port
    from unirep_port.jax_port import cell, model, precision

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port import weights

root = Path(sys.argv[1]).resolve()
assert Path(jax_port.__file__).resolve().is_relative_to(root), jax_port.__file__
seqs = ["MKTAYIAKQR", "GS", "ACDEFGHIKLMNPQRSTVWY"]

for size in map(int, sys.argv[2:]):
    print("checking", size, flush=True)
    p = jax_port.from_canonical(weights.random_params(size, seed=3), size)

    # Negative control: the hook is live, and a transposed matrix where (hidden, out) is
    # annotated fails the check.
    try:
        cell.logits(jnp.zeros((2, size), jnp.float32), p.dense_w.T, p.dense_b)
    except jaxtyping.TypeCheckError:
        pass
    else:
        raise SystemExit("the jaxtyping hook is not checking jax_port (logits took (25, H))")

    # Reps: prepare_host (numpy float64 through weight_norm / embed / input_proj), then the
    # jitted chunk over transposed (n_out, n_in) matrices (stack_step, input_proj and
    # mlstm_step with out_in=True, matmul).
    h_avg, _, _ = jax_port.get_reps(seqs, p, batch_size=4, chunk_len=4)
    assert h_avg.shape == (3, size), h_avg.shape

    # Per-position outputs (model.forward_prepared under jit).
    hs = jax_port.get_hidden_states(seqs[:2], p)
    assert hs[0].shape == (11, size), hs[0].shape

    # Evotune: loss and gradient through the fused recurrence (training layout, (K, B) blocks);
    # on the 64 model inside one jitted Adam step (its batch is traced: the Batch annotation).
    x, y, m = jax_port.make_batch(seqs[:2])
    if size == 64:
        p2, _, val = jax_port.train_step(p, jax_port.init_opt_state(p, 1e-3), (x, y, m), block=8)
        assert p2.cells[0].wh.shape == p.cells[0].wh.shape
    else:
        val, grads = jax.value_and_grad(jax_port.evotune_loss)(p, x, y, m, block=8)
        assert grads.cells[0].wh.shape == p.cells[0].wh.shape
    assert np.isfinite(float(val))

    if size == 64:
        # The rest once, on the smallest model: babbling (the single-step jit), the "fast" mode's
        # bf16 matrices, the differentiable reference path on host arrays, the unfused loss.
        assert len(jax_port.babble("MKT", 6, key=jax.random.PRNGKey(0), params=p)) >= 4
        prep = precision.cast_prepared(model.prepare_host(p))
        carries = model.zero_carries(p.n_layers, 2, size)
        _, hb, _ = jax.jit(model.stack_step)(prep, jnp.asarray([24, 1], jnp.int32), carries)
        assert hb.shape == (2, size) and hb.dtype == jnp.float32
        hs2, lg = jax_port.forward(p, x, (m > 0).sum(1))
        assert lg.shape == (*x.shape, 25), lg.shape
        assert np.isfinite(float(jax_port.evotune_loss(p, x, y, m, block=8, fused=False, tbptt=3)))
    print("types checked", size, flush=True)
"""


def test_annotations_hold_under_runtime_checking():
    """The public paths of the 64, 256 and 1900 models pass the jaxtyping/beartype checks.

    One subprocess for all three (importing under the hook costs seconds); its output names the
    size being checked when a check fails. 1900 has one layer whose input width (10) differs
    from H, 64 and 256 have four with n_in = H for layers 1-3.
    """
    pytest.importorskip("beartype")
    sizes = ["64", "256", "1900"]
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT), *sizes],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    for size in sizes:
        assert f"types checked {size}" in proc.stdout, proc.stdout
