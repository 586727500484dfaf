"""Repeated calls with the same weights dict convert and prepare once, and never go stale."""

from __future__ import annotations

import numpy as np

from unirep_port import jax_port
from unirep_port import weights
from unirep_port.jax_port import model, params


def test_same_dict_is_converted_once_and_replacement_is_seen():
    d = weights.random_params(64, seed=3)
    p1 = params.load_params(d)
    assert params.load_params(d) is p1
    assert model.prepare_host(p1) is model.prepare_host(p1)
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
