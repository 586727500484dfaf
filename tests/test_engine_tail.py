"""The engine's tail runs on smaller compiled batches, and its token lookup clips; both keep
the results bit for bit.

Real published weights (64 model) and real proteins (``parity_tests/data/real_proteins.fasta``).
Every batch takes the transposed layout here (the ``one_layout`` fixture).
The expected values are the engine's own outputs with the tail kept at the full batch
(``tail_floor=None``, the engine before issue 18) and with the lookup it had before
(``jnp.take``'s default fill mode, NaN for a row out of range), which the parity suite checks
against the TF reference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jobs import proteins

from unirep_port import jax_port
from unirep_port.jax_port import engine, model


@pytest.fixture(autouse=True)
def one_layout(monkeypatch):
    """Every batch in the transposed layout: these tests are about moving rows between batches,
    which keeps a row's bits only while the batches share a layout (a layout change moves them
    within float32 rounding, judged in ``tests/test_layout_choice.py``)."""
    from unirep_port.jax_port import layout

    monkeypatch.setattr(layout, "speedup", lambda hidden, batch: 0.0)


@pytest.fixture(scope="module")
def m64(published):
    return model.as_model(jax_port.from_canonical(published(64)), 64)


def test_tail_sizes_are_a_fixed_set_of_halvings():
    assert engine.tail_sizes(136, 8, 1) == [128, 64, 32, 16, 8]
    assert engine.tail_sizes(64, 8, 1) == [32, 16, 8]
    assert engine.tail_sizes(8, 8, 1) == []
    assert engine.tail_sizes(64, 1, 2) == [32, 16, 8, 4, 2]
    assert engine.tail_sizes(8, 1, 1) == [4, 2]  # never one row: its kernel sums differently
    assert engine.tail_sizes(12, 1, 3) == [9, 6, 3]  # rounded up to the device count
    assert engine.tail_sizes(256, None, 1) == []


@pytest.mark.parametrize("floor", [2, 8])
def test_tail_shrinks_and_results_are_bitwise_the_full_batch_ones(m64, floor):
    seqs = proteins(60)
    toks = jax_port.encode(seqs)
    want = engine.run_reps(toks, m64, tail_floor=None)
    s0 = engine.run_stats()
    got = engine.run_reps(toks, m64, tail_floor=floor)
    s1 = engine.run_stats()
    lengths = np.array([len(t) for t in toks])
    B = engine.pick_batch(len(toks), 256, 1, lengths, engine.default_chunk_len("cpu", 64))
    assert 0 < s1["shrinks"] - s0["shrinks"] <= len(engine.tail_sizes(B, floor, 1))
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_tail_computes_fewer_slot_steps(m64):
    toks = jax_port.encode(proteins(60))
    s0 = engine.run_stats()
    engine.run_reps(toks, m64, tail_floor=None)
    s1 = engine.run_stats()
    engine.run_reps(toks, m64, tail_floor=8)
    s2 = engine.run_stats()
    assert s2["tokens"] - s1["tokens"] == s1["tokens"] - s0["tokens"]  # the same real work
    assert s2["slot_steps"] - s1["slot_steps"] < 0.9 * (s1["slot_steps"] - s0["slot_steps"])


def test_auto_tail_declines_a_shrink_whose_compile_costs_more_than_it_saves(m64, monkeypatch):
    """A compile estimated at an hour never pays; once the sizes have run here, they are free."""
    toks = jax_port.encode(proteins(60))
    want = engine.run_reps(toks, m64, tail_floor=None)
    monkeypatch.setattr(engine.PROCESS, "seen", set())
    monkeypatch.setattr(engine.PROCESS, "compile_s", {})
    monkeypatch.setattr(engine, "DEFAULT_COMPILE_S", 3600.0)
    monkeypatch.setattr(engine.aot_cache, "at_hand", lambda *a, **k: False)  # nothing on disk
    s0 = engine.run_stats()
    got = engine.run_reps(toks, m64)  # "auto": no tail size at hand yet
    s1 = engine.run_stats()
    assert s1["shrinks"] == s0["shrinks"] and s1["shrinks_declined"] > s0["shrinks_declined"]
    engine.run_reps(toks, m64, tail_floor=8)  # an int always shrinks: the sizes are now at hand
    s2 = engine.run_stats()
    assert s2["shrinks"] > s1["shrinks"]
    monkeypatch.setattr(engine, "TAIL_SLOPE", 1e9)  # any saving beats a chunk's round trip
    again = engine.run_reps(toks, m64)
    s3 = engine.run_stats()
    assert s3["shrinks"] > s2["shrinks"]  # at hand: no compile in the cost
    for a, b, c in zip(want, got, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_an_executable_key_from_shapes_is_the_key_of_the_arrays(m64, tmp_path, monkeypatch):
    from unirep_port.jax_port import aot_cache

    keys = {}
    real = aot_cache.chunk_call

    def spy(jitted, args, out_like, name, cacheable=True):
        b = args[2].shape[1]
        keys[b] = (aot_cache._key(args, name), aot_cache._key(engine._shaped(args, b), name))
        keys[b] += (aot_cache._key(engine._shaped(args, 2 * b), name),)
        return real(jitted, args, out_like, name, cacheable)

    monkeypatch.setattr(aot_cache, "chunk_call", spy)
    engine.run_reps(jax_port.encode(proteins(60)), m64, tail_floor=8)
    assert len(keys) >= 2
    for real_key, shaped_key, other in keys.values():
        assert real_key == shaped_key != other


def test_clipped_lookup_gives_the_fill_mode_numbers_bit_for_bit(m64, monkeypatch):
    toks = jax_port.encode(proteins(24))
    got = engine.run_reps(toks, m64, tail_floor=None)
    real_take = jnp.take

    def fill_take(a, idx, axis=None, mode=None, **kw):  # the lookup before: default mode
        return real_take(a, idx, axis=axis, **kw)

    monkeypatch.setattr(jnp, "take", fill_take)
    jax.clear_caches()  # retrace the chunk with the old lookup
    try:
        want = engine.run_reps(toks, m64, tail_floor=None)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [26, -1, 99])
def test_out_of_range_token_is_named_before_anything_runs(m64, bad):
    toks = jax_port.encode(["MKV", "MKTAYIA"])
    toks[1] = toks[1].copy()
    toks[1][3] = bad
    chunks = engine.run_stats()["chunks"]
    with pytest.raises(ValueError, match=rf"sequence 1: token {bad} at position 3 .*26-row"):
        engine.run_reps(toks, m64)
    assert engine.run_stats()["chunks"] == chunks  # nothing was dispatched


def test_valid_edges_pass_the_check():
    model.check_tokens([np.array([0, 25, 24], np.int32), np.array([], np.int32)])
