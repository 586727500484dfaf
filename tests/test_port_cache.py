"""Repeated calls with the same weights dict convert and prepare once, and never go stale."""

from __future__ import annotations

import numpy as np

from unirep_port import jax_port, weights
from unirep_port.jax_port import model, params


def test_same_dict_is_converted_once_and_replacement_is_seen():
    d = weights.random_params(64, seed=3)
    p1 = params.load_params(d)
    assert params.load_params(d) is p1
    assert model.as_model(p1) is model.as_model(p1)  # prepared once per weights
    assert model.as_model(d, 64) is model.as_model(p1)
    before = jax_port.get_reps(["MKVLA"], d, 64)[0]
    d2 = dict(d)
    d2["embed_matrix"] = d["embed_matrix"] * 2.0  # a new array under the same key
    assert params.load_params(d2) is not p1
    after = jax_port.get_reps(["MKVLA"], d2, 64)[0]
    assert not np.allclose(before, after)  # the new weights were used, not the cached ones
    d["embed_matrix"] = d2["embed_matrix"]  # same dict object, array replaced
    np.testing.assert_array_equal(jax_port.get_reps(["MKVLA"], d, 64)[0], after)


def test_batch_slots_come_from_a_small_fixed_set():
    """Slots = ceil(total / max_len) rounded up to an allowed size, so compiles stay bounded."""
    from unirep_port.jax_port.engine import pick_batch

    allowed = {1, 2, 4} | set(range(8, 257, 8))
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 600))
        lengths = rng.integers(1, 2001, n)
        b = pick_batch(n, 256, 1, lengths)
        assert b in allowed and b <= 256
        want = -(-int(lengths.sum()) // int(lengths.max()))
        assert b >= min(want, n, 256)  # never fewer slots than pay for themselves
    assert pick_batch(100, 256, 1, np.full(100, 239)) == 104  # uniform: one wave
    assert pick_batch(256, 256, 1, np.full(256, 65)) == 256
    assert pick_batch(300, 256, 2, np.full(300, 10)) == 256  # rounded to the device count


def test_slots_are_the_fewest_that_take_as_many_chunks():
    """Given the chunk length, the slot count drops to the smallest allowed size whose schedule
    is no longer in chunks than the plain count's (brute force over the allowed sizes here)."""
    from unirep_port.jax_port.engine import pick_batch, schedule_chunks

    allowed = sorted({1, 2, 4} | set(range(8, 257, 8)))
    rng = np.random.default_rng(1)
    for _ in range(60):
        n = int(rng.integers(1, 700))
        lengths = rng.integers(1, 600, n) if rng.random() < 0.5 else np.full(n, 240)
        k = int(rng.choice([1, 4, 16]))
        b0, b = pick_batch(n, 256, 1, lengths), pick_batch(n, 256, 1, lengths, k)
        assert b in allowed and b <= b0
        limit = schedule_chunks(lengths, b0, k)
        assert schedule_chunks(lengths, b, k) <= limit
        if b0 > 8:
            assert not [s for s in allowed if s < b and schedule_chunks(lengths, s, k) <= limit]
    # 400 avGFP-length sequences (239 residues + start token), chunks of 4: 256 slots take two
    # waves of 60 chunks (the second 144 rows full), 200 slots take the same two, 192 take three
    assert schedule_chunks(np.full(400, 240), 256, 4) == 120
    assert schedule_chunks(np.full(400, 240), 192, 4) == 180
    assert pick_batch(400, 256, 1, np.full(400, 240), 4) == 200
    assert pick_batch(300, 256, 2, np.full(300, 10), 16) == 152  # 2 waves; even for 2 devices


def test_schedule_is_the_engines_chunk_count():
    """``schedule_chunks`` counts the chunks ``run_reps`` runs (real 64 weights, mixed lengths)."""
    from unirep_port.jax_port import engine, model
    from unirep_port.jax_port.engine import default_chunk_len, pick_batch, schedule_chunks

    m = model.as_model(jax_port.load_params(64), 64)
    rng = np.random.default_rng(2)
    seqs = [
        "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(n))) for n in rng.integers(5, 90, 70)
    ]
    toks = jax_port.encode(seqs)
    lengths = np.array([len(t) for t in toks])
    k = default_chunk_len("cpu", 64)
    before = engine.run_stats()["chunks"]
    engine.run_reps(toks, m, batch_size=32)
    ran = engine.run_stats()["chunks"] - before
    assert ran == schedule_chunks(lengths, pick_batch(len(toks), 32, 1, lengths, k), k)


def test_prepared_model_keeps_its_bf16_weights_and_the_default_cell():
    """The "fast" weights are cast once and kept on the model (no module-level cast cache)."""
    m = jax_port.prepare(weights.random_params(64, seed=3), 64)
    assert m.cell is jax_port.DEFAULT_CELL and m.hidden == 64 and m.n_layers == 4
    w = m.cast_weights(("wh", "wx"))
    assert w is m.cast_weights(("wh", "wx"))
    assert w.cells[0].wh.dtype == "bfloat16" and w.cells[0].wmh.dtype == "float32"
    assert w.cell is m.cell
    assert jax_port.prepare(m) is not m  # the constructor always builds (a new cell or not)
