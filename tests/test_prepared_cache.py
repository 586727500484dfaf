"""The prepared weights read back from the compile cache are bitwise the computed ones.

Real published weights (64 model). The expected arrays are :func:`model.prepare_host`'s own,
computed with the cache off.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from unirep_port import jax_port
from unirep_port.jax_port import cell, compile_cache, model, prepared_cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_cache, "directory", lambda: tmp_path)
    return tmp_path


def _leaves(prep):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(prep)]


def test_read_back_is_bitwise_and_skips_the_float64_work(published, cache_dir, monkeypatch):
    p = jax_port.from_canonical(published(64))
    monkeypatch.setattr(compile_cache, "directory", lambda: None)
    want = model.prepare_host(p)  # cache off: computed, nothing stored
    assert not list(cache_dir.iterdir())
    monkeypatch.setattr(compile_cache, "directory", lambda: cache_dir)
    model.prepare_host(p)  # computed and stored
    assert len(list(cache_dir.glob("unirep-port-prepared-*.npz"))) == 1
    real = model.prepare_weights

    def no_host_work(params, fns=cell.DEFAULT_CELL, xp=model.jnp):
        if xp is np:
            raise AssertionError("recomputed in float64")
        return real(params, fns, xp=xp)  # the shape trace (jax.eval_shape)

    monkeypatch.setattr(model, "prepare_weights", no_host_work)
    got = model.prepare_host(p)
    for a, b in zip(_leaves(want), _leaves(got), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_other_cells_are_not_cached(published, cache_dir):
    p = jax_port.from_canonical(published(64))
    model.prepare_host(p, cell.DEFAULT_CELL._replace(tanh=lambda x: model.jnp.tanh(x)))
    assert not list(cache_dir.iterdir())


def test_a_bad_file_is_ignored_and_rewritten(published, cache_dir):
    p = jax_port.from_canonical(published(64))
    want = model.prepare_host(p)
    f = prepared_cache.path_for(p)
    f.write_bytes(b"not an npz")
    got = model.prepare_host(p)
    for a, b in zip(_leaves(want), _leaves(got)):
        assert np.array_equal(a, b)
    assert f.stat().st_size > 1000  # rewritten


def test_key_changes_with_the_weights(published):
    d = dict(published(64))
    k0 = prepared_cache.key(jax_port.from_canonical(d))
    name = next(k for k in d if d[k].ndim == 2)
    d[name] = d[name].copy()
    d[name][0, 0] += 1.0
    assert prepared_cache.key(jax_port.from_canonical(d)) != k0
