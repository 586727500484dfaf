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
    assert len(list(cache_dir.glob("unirep-port-prepared-*.bin"))) == 1
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


def _flip_last_data_byte(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 0x40])


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"not a prepared file",
        lambda b: b[: len(b) // 2],  # torn
        lambda b: b + b"\0" * 64,  # longer than its header says
        _flip_last_data_byte,  # one bit of the data: the CRC-32
    ],
    ids=["garbage", "torn", "long", "bitflip"],
)
def test_a_bad_file_is_ignored_and_rewritten(published, cache_dir, damage):
    p = jax_port.from_canonical(published(64))
    want = model.prepare_host(p)
    f = prepared_cache.path_for(p)
    good = f.read_bytes()
    f.write_bytes(damage(good))
    assert prepared_cache._read(f) is None
    got = model.prepare_host(p)
    for a, b in zip(_leaves(want), _leaves(got), strict=True):
        assert np.array_equal(a, b)
    assert f.read_bytes() == good  # rewritten


def test_leaves_are_read_into_aligned_memory(published, cache_dir):
    """Each leaf starts on a 64-byte boundary, the alignment XLA:CPU needs to use a host buffer
    without copying it (``jax.device_put``)."""
    p = jax_port.from_canonical(published(64))
    model.prepare_host(p)
    arrs = prepared_cache._read(prepared_cache.path_for(p))
    assert arrs and all(a.ctypes.data % prepared_cache.ALIGN == 0 for a in arrs)


def test_published_weights_are_keyed_by_their_verified_file(published):
    """The published Params carry the manifest's SHA-256 of their file (checked by the fetch), so
    the key does not hash 74 MB of arrays; the same arrays loaded any other way hash them and
    give another key, and a change of one weight changes that one."""
    p = jax_port.load_params(64)
    digest = jax_port.params.content_digest(p)
    assert digest is not None and digest.startswith("published-64-sha256:")
    copy = jax_port.from_canonical(published(64))
    assert jax_port.params.content_digest(copy) is None
    assert prepared_cache.key(copy) != prepared_cache.key(p)


def test_key_changes_with_the_weights(published):
    d = dict(published(64))
    k0 = prepared_cache.key(jax_port.from_canonical(d))
    name = next(k for k in d if d[k].ndim == 2)
    d[name] = d[name].copy()
    d[name][0, 0] += 1.0
    assert prepared_cache.key(jax_port.from_canonical(d)) != k0


@pytest.mark.parametrize("size", [64, 256, 1900])
def test_stated_shapes_are_the_traced_ones(size):
    """model.prepared_shapes (what a cached file is checked against) states the tree, shapes and
    dtypes that tracing model.prepare_weights gives, for every size (random weights of the true
    shapes)."""
    from unirep_port.weights import random_params

    p = jax_port.from_canonical(random_params(size, seed=0))
    traced = jax.eval_shape(lambda q: model.prepare_weights(q), p)
    stated = model.prepared_shapes(p)
    assert jax.tree_util.tree_structure(traced) == jax.tree_util.tree_structure(stated)
    for a, b in zip(jax.tree_util.tree_leaves(traced), jax.tree_util.tree_leaves(stated)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
