"""The narrow models' one loop with its layers skewed in time gives the plain loop's bits.

``model.skewed_loop`` runs layer ``i`` on token ``s - i`` at iteration ``s`` and each product as
one batched product over the layers (``model.Stack``); ``model.stack_step`` runs the layers one
after another. Every layer's arithmetic is the same, so every output must be the same bit for
bit: the expected values are the plain loop's own outputs and the chunked engine's on the same
slots (which ``tests/test_single_loop.py`` ties to each other and the parity suite to the TF
reference). Real published weights (64 and 256 models), real proteins of unequal lengths
(``parity_tests/data/real_proteins.fasta``) and seeded random ones.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jobs import proteins, random_seqs

from unirep_port import jax_port
from unirep_port.jax_port import aot_cache, cell, engine, layout, model


@pytest.fixture(scope="module", params=[64, 256])
def m(published, request):
    return model.as_model(jax_port.from_canonical(published(request.param)), request.param)


JOBS = {
    "1x238": lambda: random_seqs(1, 238, 0),
    "8x200": lambda: random_seqs(8, 200, 1),
    "5 real": lambda: proteins(5),  # unequal lengths: padded rows masked, the ragged loop
    "2x3": lambda: random_seqs(2, 3, 2),  # fewer tokens (4) than layers + 1
    "24x60": lambda: random_seqs(24, 60, 3),
}


@pytest.fixture
def loops(monkeypatch):
    """For each single loop compiled or called: whether it received a stack (ran skewed)."""
    seen = []
    real = aot_cache.chunk_call

    def spy(jitted, args, *a, **k):
        if any(jitted is f for f in engine._LOOPS.values()):  # (prep, stack, tokens, ...)
            seen.append(args[1] is not None)
        return real(jitted, args, *a, **k)

    monkeypatch.setattr(aot_cache, "chunk_call", spy)
    return seen


@pytest.mark.parametrize("job", list(JOBS))
def test_skewed_loop_gives_the_plain_loops_and_the_chunks_bits(m, loops, job):
    toks = jax_port.encode(JOBS[job]())
    chunks = engine.run_reps(toks, m, single_loop=False, tail_floor=None)
    plain = engine.run_reps(toks, m, single_loop=True, skewed=False)
    got = engine.run_reps(toks, m, single_loop=True, skewed=True)
    assert loops == [False, True]  # each ran as asked, one loop each
    for name, a, b, c in zip(("h_avg", "h_final", "c_final"), chunks, plain, got):
        np.testing.assert_array_equal(b, a, err_msg=f"plain loop vs chunks: {name}")
        np.testing.assert_array_equal(c, b, err_msg=f"skewed vs plain loop: {name}")


@pytest.mark.parametrize("faster", [10.0, 0.1], ids=["in_out", "out_in"])
def test_skewed_loop_gives_the_same_bits_in_either_layout(published, monkeypatch, faster):
    monkeypatch.setattr(layout, "speedup", lambda hidden, batch: faster)
    m = model.as_model(jax_port.from_canonical(published(256)), 256)
    toks = jax_port.encode(proteins(8))
    plain = engine.run_reps(toks, m, single_loop=True, skewed=False)
    got = engine.run_reps(toks, m, single_loop=True, skewed=True)
    for a, b in zip(plain, got):
        np.testing.assert_array_equal(b, a)


def test_skewed_loop_runs_the_models_cell_functions(published):
    """A cell variant (here XLA's own sigmoid) reaches the skewed loop: its reps move from the
    default cell's, and the skewed loop still gives the plain loop's bits for it."""
    p = jax_port.from_canonical(published(64))
    variant = jax_port.prepare(p, 64, cell=cell.DEFAULT_CELL._replace(sigmoid=jax.nn.sigmoid))
    toks = jax_port.encode(random_seqs(3, 120, 4))
    default = engine.run_reps(toks, model.as_model(p, 64), single_loop=True, skewed=True)
    got = engine.run_reps(toks, variant, single_loop=True, skewed=True)
    plain = engine.run_reps(toks, variant, single_loop=True, skewed=False)
    assert not np.array_equal(got[2], default[2])
    for a, b in zip(plain, got):
        np.testing.assert_array_equal(b, a)


def test_skewed_loop_in_the_fast_mode_gives_the_plain_loops_bits(m):
    """bfloat16 matrices (``precision="bf16"``): each layer's batched product is the same
    mixed-precision product as its own."""
    toks = jax_port.encode(random_seqs(4, 150, 5))
    plain = engine.run_reps(toks, m, single_loop=True, precision="bf16", skewed=False)
    got = engine.run_reps(toks, m, single_loop=True, precision="bf16", skewed=True)
    for a, b in zip(plain, got):
        np.testing.assert_array_equal(b, a)


def test_stack_holds_each_layers_matrices_in_its_layout(m):
    for out_in in (True, False):
        w = m.weights.in_layout(out_in)
        st = model.stack_cells(w)
        n = len(w.cells)
        assert st.wh.shape[0] == st.wmh.shape[0] == n and st.wx.shape[0] == n - 1
        for i, c in enumerate(w.cells):
            np.testing.assert_array_equal(st.wh[i], np.asarray(c.wh))
            np.testing.assert_array_equal(st.wmh[i], np.asarray(c.wmh))
            if i:
                np.testing.assert_array_equal(st.wx[i - 1], np.asarray(c.wx))
                np.testing.assert_array_equal(st.wmx[i - 1], np.asarray(c.wmx))
                np.testing.assert_array_equal(st.b[i - 1, 0], np.asarray(c.b))


def test_a_few_rows_of_a_stacked_model_run_skewed_by_default(m, loops):
    """The rule (``engine.use_skewed``): up to ``SKEW_MAX_ROWS`` rows of the 64/256 models on a
    CPU (4 and 32); never the one layer of the 1900 model, more rows or an accelerator; one
    row of a stacked model of another width."""
    top = engine.SKEW_MAX_ROWS[m.hidden]
    assert engine.use_skewed("cpu", 4, 1, m.hidden) and engine.use_skewed("cpu", 4, top, m.hidden)
    assert not engine.use_skewed("cpu", 4, top + 1, m.hidden)
    assert not engine.use_skewed("cpu", 1, 1, 1900) and not engine.use_skewed("gpu", 4, 1, 64)
    assert engine.use_skewed("cpu", 4, 1, 128) and not engine.use_skewed("cpu", 4, 2, 128)
    for n in (1, 2, top + 1):  # top + 1 sequences: the next allowed batch, above the rule's
        engine.run_reps(jax_port.encode(random_seqs(n, 50, 6)), m)
    assert loops == [True, True, False]
