"""The weight layout is chosen per batch by a timing probe, and either layout is a faithful port.

The decision (:func:`jax_port.layout.out_in`) is tested with the probe's result forced both ways
(the probe is monkeypatched, the decision is not). What each layout computes is judged by the
parity suite's own verdict (``parity.engine.run_parity``: the real published 256 weights, the
pinned TF reference, bounds derived at run time against float64), not by a tolerance written here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from jobs import proteins

from unirep_port import jax_port
from unirep_port.jax_port import aot_cache, engine, layout, model


@pytest.fixture
def force(monkeypatch):
    """``force(faster)``: the probe measures (n_in, n_out) ``faster`` times as fast, everywhere."""

    def set_speedup(faster: float):
        monkeypatch.setattr(layout, "speedup", lambda hidden, batch: faster)

    return set_speedup


@pytest.fixture
def seen_layouts(monkeypatch):
    """The ``out_in`` of the weights every compiled engine call received."""
    seen = []
    real = aot_cache.chunk_call

    def spy(jitted, args, *a, **k):
        seen.append(args[0].out_in)
        return real(jitted, args, *a, **k)

    monkeypatch.setattr(aot_cache, "chunk_call", spy)
    return seen


def test_one_row_and_accelerators_keep_the_transposed_layout_without_probing(monkeypatch):
    def boom(hidden, batch):
        raise AssertionError("probed")

    monkeypatch.setattr(layout, "speedup", boom)
    assert layout.out_in("cpu", 64, 1)  # the row-vector kernel's accuracy (cell.matmul)
    assert layout.out_in("gpu", 64, 8) and layout.out_in("cuda", 1900, 256)


def test_the_probe_decides_with_its_margin(force):
    force(layout.MARGIN * 1.01)
    assert not layout.out_in("cpu", 256, 8)
    force(layout.MARGIN * 0.99)  # faster, but not by the margin: stays
    assert layout.out_in("cpu", 256, 8)


def test_the_probe_times_both_layouts_once(monkeypatch, tmp_path):
    from unirep_port.jax_port import probes

    monkeypatch.setattr(probes, "store_file", lambda: tmp_path / "probes.json")
    monkeypatch.setattr(probes, "_MEMORY", {})
    s = layout.speedup(64, 4)
    rec = probes.measured("layout", 64, 4, lambda: pytest.fail("measured twice"))
    assert s == rec["speedup"] > 0 and rec["out_in_s"] > 0 and rec["in_out_s"] > 0


def test_in_layout_is_an_exact_transpose(published):
    prep = model.as_model(jax_port.from_canonical(published(64)), 64).weights
    assert prep.out_in and prep.in_layout(True) is prep
    other = prep.in_layout(False)
    assert not other.out_in
    for a, b in zip(prep.cells, other.cells):
        for name in ("wx", "wh", "wmx", "wmh"):
            np.testing.assert_array_equal(np.asarray(getattr(a, name)).T, getattr(b, name))
    back = other.in_layout(True)
    for a, b in zip(prep.cells, back.cells):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


IN_LAYOUT_SCRIPT = r"""
from unirep_port import weights
from unirep_port.jax_port import compile_cache, model
m = model.as_model(weights.random_params(64, seed=0), 64)
before = compile_cache.counts()["requests"]
m.weights.in_layout(False).in_layout(True)
print("REQUESTS", compile_cache.counts()["requests"] - before)
"""


def test_changing_layout_compiles_nothing():
    """A fresh process (so no executable is already in memory): the transposes are host copies.
    As jnp ops they compiled a transpose and a copy per matrix shape in the first call at a batch
    that takes TF's layout (what that cost: ``docs/speed.md``, "Tried on the narrow models")."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["UNIREP_PORT_NO_COMPILE_CACHE"] = "1"
    res = subprocess.run(
        [sys.executable, "-c", IN_LAYOUT_SCRIPT], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "REQUESTS 0" in res.stdout, res.stdout


@pytest.mark.parametrize("faster", [10.0, 0.1], ids=["in_out", "out_in"])
def test_loop_and_chunks_give_the_same_bits_in_either_layout(
    published, force, seen_layouts, faster
):
    """A batch size takes one layout, so a job's bits do not depend on how the engine ran it."""
    force(faster)
    m = model.as_model(jax_port.from_canonical(published(256)), 256)
    toks = jax_port.encode(proteins(8))
    chunks = engine.run_reps(toks, m, single_loop=False, tail_floor=None)
    loop = engine.run_reps(toks, m, single_loop=True)
    assert set(seen_layouts) == {faster < layout.MARGIN}
    for a, b in zip(chunks, loop):
        np.testing.assert_array_equal(a, b)


@pytest.mark.tf
@pytest.mark.parametrize("faster", [10.0, 0.1], ids=["in_out", "out_in"])
def test_either_layout_passes_the_parity_verdict(published, force, seen_layouts, faster):
    """Eight real proteins in one batch (the reps through the engine at B=8, in the forced
    layout) against the pinned TF reference, judged by the suite's derived bounds."""
    from unirep_port.parity.engine import run_parity

    force(faster)
    seqs = proteins(8)
    panel = [(f"p{i}", s) for i, s in enumerate(seqs)]
    params = published(256)
    port_model = jax_port.prepare(params, 256)  # a model is always run (no shared-result cache)
    result, _, port = run_parity(params, port_model, panel, 256)
    assert False in seen_layouts if faster > layout.MARGIN else True in seen_layouts
    assert result.ok, "\n".join(result.failures())
    assert np.isfinite(port.h_avg).all()


@pytest.mark.parametrize("out_in", [True, False])
def test_every_product_of_a_step_goes_through_the_cells_matmul_in_either_layout(published, out_in):
    """A planted ``matmul`` (and the fast mode's bf16 product, which ``cell.matmul`` chooses)
    reaches every product of the step: the recurrent ones of each layer and the input ones of the
    stacked layers above layer 0, in both layouts."""
    import jax

    from unirep_port.jax_port.cell import DEFAULT_CELL, matmul

    calls = []

    def counted(x, w, out_in=False):
        calls.append(out_in)
        return matmul(x, w, out_in)

    m = jax_port.prepare(published(256), 256, cell=DEFAULT_CELL._replace(matmul=counted))
    prep = m.weights.in_layout(out_in)
    carries = model.zero_carries(m.n_layers, 8, m.hidden)
    jax.eval_shape(model.stack_step, prep, np.zeros(8, np.int32), carries)
    assert len(calls) == 2 * m.n_layers + 2 * (m.n_layers - 1)  # 4 layers: 14 products
    assert set(calls) == {out_in}


def test_decided_answers_without_timing(monkeypatch, tmp_path):
    """What the tail's "does a shrink pay" asks: the layout if no probe is needed, else None."""
    from unirep_port.jax_port import probes

    monkeypatch.setattr(probes, "store_file", lambda: tmp_path / "probes.json")
    monkeypatch.setattr(probes, "_MEMORY", {})
    monkeypatch.setattr(layout, "speedup", lambda hidden, batch: pytest.fail("timed"))
    assert layout.decided("cpu", 64, 1) is True and layout.decided("gpu", 64, 8) is True
    assert layout.decided("cpu", 64, 8) is None  # never probed here: unknown, and not timed
    probes.measured("layout", 64, 8, lambda: {"speedup": 2.0})
    assert layout.decided("cpu", 64, 8) is False
    monkeypatch.setattr(probes, "_MEMORY", {})  # another process: read back from the store
    assert layout.decided("cpu", 64, 8) is False
