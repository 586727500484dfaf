"""Sharded, resumable reps (issue 12): manifest, resume, bad records, and faults on local Ray.

Expected reps everywhere are the in-process engine's (``unirep-port reps IN -o OUT.npz``, the
published 64 model) on the same file: sharded output must be bitwise equal to it, every input
id exactly once, in input order. The first group runs the shard logic in this process
(``--format parquet``, no Ray); the ``ray`` group starts real local Ray clusters (2 workers)
in subprocesses and kills a worker, and the driver, for real.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from ray_helpers import Job, listening_sockets, session_pids

from unirep_port.alphabet import STANDARD_AA
from unirep_port.cli import main
from unirep_port.shards import MANIFEST, Manifest, load_reps

AA = np.frombuffer(STANDARD_AA.encode(), np.uint8)
REPS = ("h_avg", "h_final", "c_final")


def _fasta(path: Path, n: int, seed: int, lo: int = 20, hi: int = 200) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [f"rec{i:05d}" for i in range(n)]
    with open(path, "w") as fh:
        for rid in ids:
            seq = AA[rng.integers(0, 20, rng.integers(lo, hi))].tobytes().decode()
            fh.write(f">{rid} synthetic\n{seq}\n")
    return ids


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """100 records and their in-process reps (the expected values)."""
    d = tmp_path_factory.mktemp("small")
    src = d / "in.fa"
    ids = _fasta(src, 100, seed=1)
    ref = d / "ref.npz"
    assert main(["reps", str(src), "-o", str(ref), "--size", "64", "--quiet"]) == 0
    return src, ids, load_reps(ref)


def _equal(got: dict, ref: dict, ids: list[str]) -> None:
    assert list(got["ids"]) == ids  # every id exactly once, in input order
    for k in REPS:
        assert got[k].dtype == np.float32 and np.array_equal(got[k], ref[k]), k


def _run(src, out, *extra) -> int:
    return main(["reps", str(src), "-o", str(out), "--size", "64", "--quiet", *extra])


def test_parquet_layout_manifest_and_one_call_loading(small, tmp_path, capsys):
    src, ids, ref = small
    out = tmp_path / "out"
    assert _run(src, out, "--format", "parquet", "--shard-size", "32") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [MANIFEST] + [f"shard-{k:06d}.parquet" for k in range(4)]
    man = Manifest.read(out)
    assert [man.shards[k]["count"] for k in range(4)] == [32, 32, 32, 4]
    assert man.complete == {"kind": "complete", "records": 100, "shards": 4}
    _equal(load_reps(out), ref, ids)
    import pyarrow.parquet as pq

    table = pq.read_table(out)  # what pandas.read_parquet(out) reads: the shards, in order
    assert table.column("id").to_pylist() == ids
    assert str(table.schema.field("h_avg").type) == "fixed_size_list<element: float>[64]"
    assert table.column("length").to_pylist() == [len(s) for s in _seqs(src)]


def test_local_engine_device_goes_through_jax_config_not_the_environment(
    small, tmp_path, monkeypatch
):
    """``--device cpu`` with the local sharded engine picks JAX's platforms through JAX's own
    configuration, as the one-file path does, and leaves the process environment as it was
    (issue 29: this path wrote ``JAX_PLATFORMS`` into ``os.environ``); the reps are the same."""
    import jax

    src, ids, ref = small
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    before = jax.config.jax_platforms
    try:
        assert _run(src, tmp_path / "out", "--format", "parquet", "--device", "cpu") == 0
        assert "JAX_PLATFORMS" not in os.environ
        assert jax.config.jax_platforms == "cpu"
    finally:
        jax.config.update("jax_platforms", before)
    _equal(load_reps(tmp_path / "out"), ref, ids)


def _seqs(src: Path) -> list[str]:
    return [ln.strip() for ln in src.read_text().splitlines() if not ln.startswith(">")]


def test_resume_skips_finished_and_redoes_partial(small, tmp_path, capsys):
    src, ids, ref = small
    out = tmp_path / "out"
    assert _run(src, out, "--format", "parquet", "--shard-size", "16") == 0
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    (out / "shard-000002.parquet").unlink()  # lost
    with open(out / "shard-000005.parquet", "r+b") as fh:  # corrupted in place
        fh.seek(100)
        fh.write(b"\0" * 8)
    (out / ".shard-000003.parquet.tmp-999").write_bytes(b"half")  # a killed worker's leftover
    assert _run(src, out, "--format", "parquet", "--shard-size", "16") == 0
    assert "(5 reused from an earlier run)" in capsys.readouterr().out  # 7 shards, 2 redone
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    changed = {n for n in after if after[n] != before.get(n)}
    assert changed == {"shard-000002.parquet", "shard-000005.parquet"}
    assert not list(out.glob(".*"))
    _equal(load_reps(out), ref, ids)
    # Other settings refuse to mix into the same directory.
    assert _run(src, out, "--format", "parquet", "--shard-size", "32") == 2
    assert "shard_size: 16 -> 32" in capsys.readouterr().err


def test_bad_record_fails_its_shard_only_then_fix_and_resume(small, tmp_path, capsys):
    src, ids, ref = small
    bad = tmp_path / "bad.fa"
    text = src.read_text().splitlines()
    line = text.index(f">{ids[70]} synthetic") + 1  # record 71: shard 4 at 16 a shard
    good_seq = text[line]
    text[line] = good_seq[:5] + "J1" + good_seq[7:]
    bad.write_text("\n".join(text) + "\n")
    out = tmp_path / "out"
    assert _run(bad, out, "--format", "parquet", "--shard-size", "16") == 2
    err = capsys.readouterr().err
    assert f"'{ids[70]}'" in err and "'1' at 6" in err and "shard 4" in err
    assert f"line {line}" in err
    man = Manifest.read(out)
    assert sorted(man.shards) == [0, 1, 2, 3, 5, 6] and man.complete is None
    with pytest.raises(ValueError, match="not complete"):
        load_reps(out)
    part = load_reps(out, allow_incomplete=True)
    keep = [i for i in range(100) if not 64 <= i < 80]
    assert list(part["ids"]) == [ids[i] for i in keep]
    assert np.array_equal(part["h_avg"], ref["h_avg"][keep])
    text[line] = good_seq
    bad.write_text("\n".join(text) + "\n")
    assert _run(bad, out, "--format", "parquet", "--shard-size", "16") == 0
    assert "(6 reused from an earlier run)" in capsys.readouterr().out
    _equal(load_reps(out), ref, ids)


def test_duplicate_ids_across_shards_named(tmp_path, capsys):
    src = tmp_path / "d.fa"
    src.write_text("".join(f">r{i}\nMKV\n" for i in range(10)) + ">r3\nMM\n")
    out = tmp_path / "out"
    assert _run(src, out, "--format", "parquet", "--shard-size", "4") == 2
    err = capsys.readouterr().err
    assert "duplicate id 'r3': record #11 (shard 2) repeats record #4 (shard 0)" in err
    assert Manifest.read(out).complete is None  # the run is not marked complete


# ---------------------------------------------------------------- real local Ray, 2 workers

ray_mark = pytest.mark.ray


def _cli(src, out, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "unirep_port.cli",
        "reps",
        str(src),
        "-o",
        str(out),
        "--size",
        "64",
        "--quiet",
        "--engine",
        "ray",
        "--workers",
        "2",
        *extra,
    ]


def _shards_done(out: Path) -> int:
    return len(Manifest.read(out).shards)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1,200 records, 75 shards of 16: long enough to kill things mid-run; in-process reps."""
    d = tmp_path_factory.mktemp("big")
    src = d / "in.fa"
    ids = _fasta(src, 1200, seed=2, lo=50, hi=300)
    ref = d / "ref.npz"
    assert main(["reps", str(src), "-o", str(ref), "--size", "64", "--quiet"]) == 0
    return src, ids, load_reps(ref)


@ray_mark
def test_ray_sigkill_a_worker_mid_run_loses_nothing(big, tmp_path):
    pytest.importorskip("ray")
    src, ids, ref = big
    out = tmp_path / "out"
    job = Job(_cli(src, out, "--shard-size", "16"), tmp_path / "log")
    try:
        job.wait_for(lambda: len(re.findall(r"ray: worker \d pid", job.text())) == 2, "workers")
        pids = [int(p) for p in re.findall(r"ray: worker \d pid (\d+)", job.text())]
        job.wait_for(lambda: _shards_done(out) >= 3, "three shards")
        os.kill(pids[0], signal.SIGKILL)
        done_at_kill = _shards_done(out)
        rc = job.finish()
    finally:
        job.close()
    assert rc == 0, job.text()[-3000:]
    assert done_at_kill < 75  # the kill landed mid-run
    _equal(load_reps(out), ref, ids)
    assert Manifest.read(out).complete["records"] == 1200
    assert not list(out.glob(".*"))


@ray_mark
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"]
)
def test_ray_driver_killed_then_rerun_resumes(big, tmp_path, sig):
    pytest.importorskip("ray")
    src, ids, ref = big
    out = tmp_path / "out"
    job = Job(_cli(src, out, "--shard-size", "16"), tmp_path / "log1")
    try:
        job.wait_for(lambda: _shards_done(out) >= 4, "four shards")
        os.kill(job.proc.pid, sig)
        rc = job.proc.wait(60)
        if sig != signal.SIGKILL:  # cleaned up on the way out: exit 143 / 130, no temporaries
            assert rc == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], job.text()[-3000:]
            assert not list(out.glob(".*"))
    finally:
        job.close()
    finished = _shards_done(out)
    assert 4 <= finished < 75 and Manifest.read(out).complete is None
    job2 = Job(_cli(src, out, "--shard-size", "16"), tmp_path / "log2")
    assert job2.finish() == 0, job2.text()[-3000:]
    m = re.search(r"\((\d+) reused from an earlier run\)", job2.text())
    assert m and int(m.group(1)) == finished
    _equal(load_reps(out), ref, ids)
    assert not list(out.glob(".*"))


@ray_mark
def test_ray_malformed_record_in_shard_k_named_others_intact(small, tmp_path):
    pytest.importorskip("ray")
    src, ids, ref = small
    text = src.read_text().replace(f">{ids[40]} synthetic\n", f">{ids[40]} synthetic\nMK-\n")
    bad = tmp_path / "bad.fa"
    bad.write_text(text)
    out = tmp_path / "out"
    job = Job(_cli(bad, out, "--shard-size", "16", "--format", "npz"), tmp_path / "log")
    assert job.finish() == 2
    log = job.text()
    assert f"'{ids[40]}'" in log and "shard 2" in log and "'-' at 2" in log
    man = Manifest.read(out)
    assert sorted(man.shards) == [0, 1, 3, 4, 5, 6] and man.complete is None
    part = load_reps(out, allow_incomplete=True)
    keep = [i for i in range(100) if not 32 <= i < 48]
    assert list(part["ids"]) == [ids[i] for i in keep]
    for k in REPS:
        assert np.array_equal(part[k], ref[k][keep])
    assert json.loads((out / MANIFEST).read_text().splitlines()[0])["format"] == "npz"


@ray_mark
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_local_ray_listens_on_loopback_only(big, tmp_path):
    """A local Ray (no --address) started by ``reps --engine ray``: every listening TCP socket of
    the run's processes (driver, GCS, raylet, agents, workers) is on 127.0.0.1 or ::1, none on
    all interfaces or the node's address. Only reads /proc; connects to nothing."""
    pytest.importorskip("ray")
    src, _, _ = big
    job = Job(_cli(src, tmp_path / "out", "--shard-size", "16"), tmp_path / "log")
    try:
        job.wait_for(lambda: len(re.findall(r"ray: worker \d pid", job.text())) == 2, "workers")
        socks = listening_sockets(session_pids(job.proc.pid))
    finally:
        job.close()
    assert len(socks) >= 2, f"found too few listening sockets to judge: {socks}"  # GCS, raylet
    open_ = [s for s in socks if not ipaddress.ip_address(s[0]).is_loopback]
    assert not open_, f"listening beyond loopback (address, port, pid): {open_}"
