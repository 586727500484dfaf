"""Repeated calls with the same weights dict convert and prepare once, and never go stale."""

from __future__ import annotations

import numpy as np

import jax_port
import weights
from jax_port import model, params


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
