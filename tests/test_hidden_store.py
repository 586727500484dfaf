"""``unirep-port reps --hidden-states``: per-residue hidden states in HDF5 (issue 12, optional).

Expected values: ``jax_port.get_hidden_states`` of the whole input (48 records: three full
batches of 16, the batch every stored state is computed in) and the reps of the same command
without the flag (bitwise unchanged). The published 64 model throughout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("pyarrow")

from unirep_port import jax_port  # noqa: E402
from unirep_port.alphabet import STANDARD_AA  # noqa: E402
from unirep_port.cli import main  # noqa: E402
from unirep_port.hidden_store import npz_store_path  # noqa: E402
from unirep_port.shards import MANIFEST, Manifest, load_hidden_states, load_reps  # noqa: E402

AA = np.frombuffer(STANDARD_AA.encode(), np.uint8)
REPS = ("h_avg", "h_final", "c_final")
ODD_IDS = {3: "sp|P1/2", 7: ".", 11: "q%2F"}  # HDF5 path characters, escaped in the store


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("hidden")
    rng = np.random.default_rng(7)
    ids = [ODD_IDS.get(i, f"rec{i:03d}") for i in range(48)]
    seqs = [AA[rng.integers(0, 20, rng.integers(5, 140))].tobytes().decode() for _ in ids]
    src = d / "in.fa"
    src.write_text("".join(f">{i} x\n{s}\n" for i, s in zip(ids, seqs)))
    ref_npz = d / "ref.npz"
    assert _run(src, ref_npz) == 0
    states = jax_port.get_hidden_states(seqs, size=64)
    return src, ids, seqs, load_reps(ref_npz), dict(zip(ids, states))


def _run(src, out, *extra) -> int:
    return main(["reps", str(src), "-o", str(out), "--size", "64", "--quiet", *extra])


def _same_states(got: dict, ref: dict, ids: list[str]) -> None:
    assert list(got) == ids
    for i in ids:
        assert got[i].dtype == np.float32 and np.array_equal(got[i], ref[i]), i


def _same_reps(got: dict, ref: dict) -> None:
    assert list(got["ids"]) == list(ref["ids"])
    for k in REPS:
        assert np.array_equal(got[k], ref[k]), k


def _damage_chunk(store: Path, key: str) -> None:
    """Overwrite 8 bytes inside the first stored chunk of /states/key (the data, not metadata)."""
    with h5py.File(store, "r") as f:
        off = f["states"][key].id.get_chunk_info(0).byte_offset
    with open(store, "r+b") as fh:
        fh.seek(off + 16)
        fh.write(b"\xff" * 8)


def test_npz_path_states_bitwise_reps_unchanged(data, tmp_path, capsys):
    src, ids, seqs, ref_reps, ref_states = data
    out = tmp_path / "r.npz"
    assert _run(src, out, "--hidden-states") == 0
    store = npz_store_path(out)
    assert store.name == "r.hidden.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.hidden.h5", "r.npz"]  # no temps
    _same_reps(load_reps(out), ref_reps)
    _same_states(load_hidden_states(out), ref_states, ids)
    with h5py.File(store, "r") as f:  # readable with plain h5py: lengths and ids recorded
        assert list(f["length"][()]) == [len(s) for s in seqs]
        ds = f["states"]["sp|P1%2F2"]
        assert ds.attrs["id"] == "sp|P1/2" and ds.attrs["length"] == len(seqs[3])
        assert ds.compression == "gzip" and ds.fletcher32 and ds.chunks[1] == 64
    got = load_hidden_states(store, ids=["q%2F", "."])
    assert list(got) == ["q%2F", "."] and np.array_equal(got["."], ref_states["."])
    # An existing store is not overwritten without --force; refused options name the flag.
    assert _run(src, out, "--hidden-states") == 2
    assert "r.hidden.h5 exists" in capsys.readouterr().err
    assert _run(src, tmp_path / "f.npz", "--hidden-states", "--precision", "fast") == 2
    assert "--hidden-states computes at --precision highest" in capsys.readouterr().err
    assert _run(src, tmp_path / "t.npz", "--hidden-states", "--impl", "tf") == 2
    assert not (tmp_path / "t.npz").exists() and not npz_store_path(tmp_path / "t.npz").exists()


def test_npz_store_damage_and_stale_store_detected(data, tmp_path):
    src, ids, _, ref_reps, ref_states = data
    out = tmp_path / "r.npz"
    assert _run(src, out, "--hidden-states") == 0
    store = npz_store_path(out)
    _damage_chunk(store, "rec005")
    with pytest.raises(ValueError, match=r"r\.hidden\.h5: hidden states of 'rec005' are damaged"):
        load_hidden_states(out)
    assert np.array_equal(load_hidden_states(out, ids=["rec004"])["rec004"], ref_states["rec004"])
    # The .npz rewritten (other input) without the flag: the store left beside it is stale.
    short = tmp_path / "short.fa"
    short.write_text("".join(src.read_text().splitlines(keepends=True)[:20]))
    assert _run(short, out, "--force") == 0
    with pytest.raises(ValueError, match=r"r\.hidden\.h5: does not belong to .*r\.npz"):
        load_hidden_states(out)


def test_parquet_shards_store_per_shard_in_manifest(data, tmp_path):
    src, ids, _, ref_reps, ref_states = data
    out = tmp_path / "out"
    assert _run(src, out, "--format", "parquet", "--shard-size", "20", "--hidden-states") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "_hidden",
        MANIFEST,
        *(f"shard-{k:06d}.parquet" for k in range(3)),
    ]
    assert sorted(p.name for p in (out / "_hidden").iterdir()) == [
        f"shard-{k:06d}.h5" for k in range(3)
    ]
    man = Manifest.read(out)
    assert man.header["hidden_states"] is True
    for k in range(3):
        h = man.shards[k]["hidden"]
        assert h["file"] == f"_hidden/shard-{k:06d}.h5" and len(h["sha256"]) == 64
    _same_reps(load_reps(out), ref_reps)  # reps unchanged by the flag
    _same_states(load_hidden_states(out), ref_states, ids)  # shards of 20: same bits
    got = load_hidden_states(out, ids=["rec047", "sp|P1/2"])
    assert list(got) == ["rec047", "sp|P1/2"]
    assert np.array_equal(got["rec047"], ref_states["rec047"])
    with pytest.raises(KeyError, match="'nope'"):
        load_hidden_states(out, ids=["rec001", "nope"])
    import pyarrow.parquet as pq

    assert pq.read_table(out).column("id").to_pylist() == ids  # _hidden/ is not read as parquet
    other = tmp_path / "plain"
    assert _run(src, other, "--format", "parquet", "--shard-size", "20") == 0
    with pytest.raises(ValueError, match="written without --hidden-states"):
        load_hidden_states(other)


def test_resume_skips_finished_store_redoes_damaged_one(data, tmp_path, capsys):
    src, ids, _, ref_reps, ref_states = data
    out = tmp_path / "out"
    cmd = ("--format", "parquet", "--shard-size", "20", "--hidden-states")
    assert _run(src, out, *cmd) == 0
    files = [*out.glob("shard-*"), *(out / "_hidden").iterdir()]
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in files}
    _damage_chunk(out / "_hidden/shard-000001.h5", "rec025")
    with pytest.raises(ValueError, match=r"_hidden/shard-000001\.h5: missing or checksum mismatch"):
        load_hidden_states(out)
    (out / "_hidden/.shard-000002.h5.tmp-999").write_bytes(b"half")  # a killed worker's leftover
    capsys.readouterr()
    assert _run(src, out, *cmd) == 0
    assert "(2 reused from an earlier run)" in capsys.readouterr().out
    files = [*out.glob("shard-*"), *(out / "_hidden").iterdir()]
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in files}
    assert set(after) == set(before)  # the temporary is gone
    changed = {str(n) for n in after if after[n] != before[n]}
    assert changed == {"shard-000001.parquet", "_hidden/shard-000001.h5"}
    _same_states(load_hidden_states(out), ref_states, ids)
    _same_reps(load_reps(out), ref_reps)
    # Without the flag the same directory is refused (it would mix shards with and without).
    assert _run(src, out, "--format", "parquet", "--shard-size", "20") == 2
    assert "hidden_states: True -> False" in capsys.readouterr().err


@pytest.mark.ray
def test_ray_workers_write_the_same_states(data, tmp_path):
    pytest.importorskip("ray")
    src, ids, _, ref_reps, ref_states = data
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "unirep_port.cli", "reps", str(src), "-o", str(out)]
    argv += ["--size", "64", "--quiet", "--engine", "ray", "--workers", "1"]
    argv += ["--shard-size", "20", "--hidden-states"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_reps(load_reps(out), ref_reps)
    _same_states(load_hidden_states(out), ref_states, ids)  # single-threaded XLA: same bits


def test_sigterm_mid_run_leaves_previous_npz_and_store(tmp_path):
    """A real process, terminated while its store is being written: no temporaries remain."""
    import os
    import signal
    import time

    rng = np.random.default_rng(3)
    src = tmp_path / "big.fa"
    src.write_text(
        "".join(f">s{i}\n{AA[rng.integers(0, 20, 150)].tobytes().decode()}\n" for i in range(5000))
    )
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous output")
    npz_store_path(out).write_bytes(b"previous store")
    argv = [sys.executable, "-m", "unirep_port.cli", "reps", str(src), "-o", str(out)]
    argv += ["--size", "64", "--quiet", "--force", "--hidden-states"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # The first 1,024 reps are on disk: their hidden states are being computed.
        while not any(p.stat().st_size for p in tmp_path.glob(".unirep-npz-*/h_avg.raw")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no store written in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err.decode()[-2000:]
    assert out.read_bytes() == b"previous output"
    assert npz_store_path(out).read_bytes() == b"previous store"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.fa", "o.hidden.h5", "o.npz"]


def test_sigterm_inside_a_gc_callback_is_delivered_again():
    """A SIGTERM landing in a garbage-collector callback (where Python ignores exceptions) is
    not lost: the handler re-sends it, and it ends the run at the next ordinary point."""
    code = r"""
import gc, os, signal, sys, time
from unirep_port.interrupt import exit_on_signals

def cb(phase, info):
    if phase == "start" and not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # handled while this callback runs
        time.sleep(0.01)

fired = []
gc.callbacks.append(cb)
try:
    with exit_on_signals():
        gc.collect()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)
        print("signal lost", flush=True)
except SystemExit as e:
    print("exit", e.code, flush=True)
    raise
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "exit 143", (proc.stdout, proc.stderr)
    assert proc.returncode == 143
