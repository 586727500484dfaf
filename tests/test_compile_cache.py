"""The CLI's persistent compilation cache: a second fresh process compiles nothing.

Each run is a fresh ``python`` process running ``unirep-port reps`` (64 model, the real published
weights, real proteins from ``parity_tests/data/real_proteins.fasta``) with
``UNIREP_PORT_CACHE`` pointing at a temporary folder whose ``published/`` links to the real
weights cache, so the compile cache (``<cache>/xla-cache``) starts empty. The child reports
``jax_port.compile_cache.counts()``: ``compiles`` = executables requested - persistent-cache
hits (``jax.monitoring`` events), which is > 0 whenever XLA really compiled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unirep_port.fasta import read_fasta

ROOT = Path(__file__).resolve().parents[1]
CHILD = (
    "import json, sys\n"
    "from unirep_port.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "from unirep_port.jax_port import compile_cache, probes\n"
    "print('COUNTS', json.dumps({'rc': rc, 'probes': probes.timed_here(), "
    "**compile_cache.counts()}))\n"
)


@pytest.fixture
def cache_home(tmp_path, published):
    from unirep_port.weights import published as pub

    published(64)  # fetched (or already cached) in the real cache
    return pub.cache_sharing_weights(tmp_path / "cache")


@pytest.fixture
def fasta(tmp_path):
    recs = list(read_fasta(str(ROOT / "parity_tests" / "data" / "real_proteins.fasta")))[:12]
    path = tmp_path / "in.fasta"
    path.write_text("".join(f">{i}\n{s}\n" for i, s in recs))
    return path


NO_AOT = (  # the same run with jax_port.aot_cache switched off: JAX's own cache alone
    "from unirep_port.jax_port import aot_cache\n"
    "aot_cache.chunk_call = lambda jitted, *a, **k: jitted\n"
)


def _child(aot: bool, extra_code: str) -> str:
    """CHILD, with the AOT layer off if not ``aot`` and ``extra_code`` run before the counts."""
    code = CHILD.replace("print('COUNTS'", extra_code + "print('COUNTS'")
    return code if aot else NO_AOT + code


def _run(
    home: Path,
    fasta: Path,
    out: Path,
    *extra: str,
    env_extra=None,
    aot: bool = True,
    extra_code: str = "",
) -> dict:
    argv = ["reps", str(fasta), "-o", str(out), "--size", "64", "--quiet", "--force", *extra]
    return _counts_of(home, _child(aot, extra_code), argv, env_extra or {})


def _counts_of(home: Path, code: str, argv: list[str], env_extra: dict) -> dict:
    """Run ``code`` in a fresh Python with ``home`` as the cache folder (the suite's
    ``UNIREP_PORT_NO_COMPILE_CACHE`` removed) and return the JSON of its last ``COUNTS`` line."""
    env = {k: v for k, v in os.environ.items() if k != "UNIREP_PORT_NO_COMPILE_CACHE"}
    env.update({"UNIREP_PORT_CACHE": str(home), **env_extra})
    res = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("COUNTS ")][-1]
    return json.loads(line.split(" ", 1)[1])


def test_second_fresh_process_compiles_nothing(cache_home, fasta, tmp_path):
    first = _run(cache_home, fasta, tmp_path / "a.npz")
    second = _run(cache_home, fasta, tmp_path / "b.npz")
    assert first["compiles"] > 0 and first["cache_hits"] == 0  # an empty cache: all compiled
    assert (cache_home / "xla-cache").is_dir() and any((cache_home / "xla-cache").iterdir())
    assert second["compiles"] == 0, second
    # every executable came from a cache: JAX's (a request answered from disk) or, for the
    # engine's chunk, jax_port.aot_cache's serialized executable (no request at all); the first
    # process also compiled the timing loops of the probes it took (jax_port.probes), whose
    # answers the second reads back instead
    assert second["probes"] == [0, 0], second
    runs_requests = first["requests"] - first["probes"][1]
    assert second["cache_hits"] + second["aot_hits"] == runs_requests, (first, second)
    assert first["aot_stores"] >= 1 and second["aot_hits"] == first["aot_stores"]
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        for k in ("h_avg", "h_final", "c_final"):
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_cache_off_compiles_again(cache_home, fasta, tmp_path, how):
    """The check above fails with the cache off: the second process compiles everything."""
    extra, env = ("--no-compile-cache",), None
    if how == "env":
        extra, env = (), {"UNIREP_PORT_NO_COMPILE_CACHE": "1"}
    first = _run(cache_home, fasta, tmp_path / "a.npz", *extra, env_extra=env)
    second = _run(cache_home, fasta, tmp_path / "b.npz", *extra, env_extra=env)
    # (the probes' answers are kept without the compile cache too: the second reads them back)
    assert second["probes"] == [0, 0]
    assert second["compiles"] == first["compiles"] - first["probes"][1] > 0
    assert second["cache_hits"] == 0
    assert not (cache_home / "xla-cache").exists()


def test_a_torn_serialized_executable_is_rebuilt(cache_home, fasta, tmp_path):
    """jax_port.aot_cache: a damaged ``unirep-port-aot-*.xla`` is removed and written again, and
    the outputs are the same bits as the first run's."""
    _run(cache_home, fasta, tmp_path / "a.npz")
    files = sorted((cache_home / "xla-cache").glob("unirep-port-aot-*.xla"))
    assert files, "the engine's chunk was not kept as a serialized executable"
    for f in files:
        f.write_bytes(f.read_bytes()[:100])  # torn
    third = _run(cache_home, fasta, tmp_path / "c.npz")
    assert third["aot_hits"] == 0 and third["aot_stores"] == len(files), third
    assert all(f.stat().st_size > 100 for f in files)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "c.npz") as c:
        for k in ("h_avg", "h_final", "c_final"):
            np.testing.assert_array_equal(a[k], c[k])


def test_an_executable_read_from_jax_cache_is_not_the_one_serialized(cache_home, fasta, tmp_path):
    """Regression: an XLA:CPU executable read back from JAX's persistent cache serializes without
    some of its functions, and a later process loading that blob failed at run time ("NOT_FOUND:
    Function wrapped_iota not found"). jax_port.aot_cache compiles afresh for what it stores.
    Runs: JAX's cache filled with the AOT layer off; then on (JAX's cache would answer); then a
    third process on the stored executable, which must run and give the same bits."""
    _run(cache_home, fasta, tmp_path / "a.npz", aot=False)
    second = _run(cache_home, fasta, tmp_path / "b.npz")
    third = _run(cache_home, fasta, tmp_path / "c.npz")
    assert second["aot_stores"] >= 1 and third["aot_hits"] == second["aot_stores"], third
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "c.npz") as c:
        for k in ("h_avg", "h_final", "c_final"):
            np.testing.assert_array_equal(a[k], c[k])


def test_a_rebuilt_executable_is_compiled_afresh_too(cache_home, fasta, tmp_path):
    """Regression: the serialized chunk is built again when its file is gone (or its key changed
    with a source file), and that rebuild must be a real compile as well. A fixed "fresh" cache
    key was answered from JAX's cache on the rebuild, and the third process failed ("NOT_FOUND:
    Function wrapped_iota not found"). It must run and give the first run's bits."""
    first = _run(cache_home, fasta, tmp_path / "a.npz")
    files = sorted((cache_home / "xla-cache").glob("unirep-port-aot-*.xla"))
    assert first["aot_stores"] == len(files) >= 1, first
    for f in files:
        f.unlink()
    second = _run(cache_home, fasta, tmp_path / "b.npz")
    assert second["aot_stores"] == len(files), second
    third = _run(cache_home, fasta, tmp_path / "c.npz")
    assert third["aot_hits"] == len(files) and third["compiles"] == 0, third
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "c.npz") as c:
        for k in ("h_avg", "h_final", "c_final"):
            np.testing.assert_array_equal(a[k], c[k])


def test_a_fresh_compile_leaves_no_entry_in_jax_cache(cache_home, fasta, tmp_path):
    """The fresh compile behind a stored executable is not written to JAX's cache (its key is
    never asked for again), so rebuilding the serialized chunk does not grow that cache."""
    _run(cache_home, fasta, tmp_path / "a.npz")
    xla = cache_home / "xla-cache"
    before = {f.name for f in xla.iterdir() if not f.name.startswith("unirep-port-")}
    for f in xla.glob("unirep-port-aot-*.xla"):
        f.unlink()
    second = _run(cache_home, fasta, tmp_path / "b.npz")
    assert second["aot_stores"] >= 1, second
    after = {f.name for f in xla.iterdir() if not f.name.startswith("unirep-port-")}
    assert after == before


AFTER = (  # one more executable after the run: JAX's cache must still answer it
    "import jax, numpy as np\n"
    "jax.jit(lambda a: a * 7 + 1)(np.ones(3, np.float32)).block_until_ready()\n"
)


def test_jax_cache_still_answers_after_an_executable_is_stored(cache_home, fasta, tmp_path):
    """Storing a serialized chunk (a fresh compile) leaves JAX's persistent cache on for the rest
    of the process. (Switching the cache off around that compile left it off: a whole parity run
    then compiled all 706 of its executables again.)"""
    _run(cache_home, fasta, tmp_path / "a.npz", extra_code=AFTER)
    for f in (cache_home / "xla-cache").glob("unirep-port-aot-*.xla"):
        f.unlink()
    second = _run(cache_home, fasta, tmp_path / "b.npz", extra_code=AFTER)
    assert second["aot_stores"] >= 1, second
    assert second["cache_hits"] >= 1, second  # the jitted lambda, read back


LIBRARY_CHILD = (  # a library user's script: jax_port.get_reps, nothing switched on
    "import json, sys\n"
    "import jax, numpy as np\n"
    "from unirep_port import jax_port\n"
    "from unirep_port.fasta import read_fasta\n"
    "seqs = [s for _, s in read_fasta(sys.argv[1])]\n"
    "out = jax_port.get_reps(seqs, size=64)\n"
    "np.savez(sys.argv[2], h_avg=out[0], h_final=out[1], c_final=out[2])\n"
    "from unirep_port.jax_port import compile_cache\n"
    "print('COUNTS', json.dumps({'jax_cache': jax.config.jax_compilation_cache_dir or None,"
    " **compile_cache.counts()}))\n"
)


def _library_run(home: Path, fasta: Path, out: Path, **env_extra) -> dict:
    return _counts_of(home, LIBRARY_CHILD, [str(fasta), str(out)], env_extra)


def _same_reps(a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        for k in ("h_avg", "h_final", "c_final"):
            np.testing.assert_array_equal(x[k], y[k])


def test_a_library_call_keeps_its_executables_for_the_next_process(cache_home, fasta, tmp_path):
    """``jax_port.get_reps`` with nothing switched on keeps the engine's executables in
    ``<cache>/xla-cache`` (``compile_cache.executables_dir``): a second fresh process loads them
    and its call compiles none of them; JAX's persistent cache stays off (no entry of its own);
    the same bits."""
    first = _library_run(cache_home, fasta, tmp_path / "a.npz")
    second = _library_run(cache_home, fasta, tmp_path / "b.npz")
    xla = cache_home / "xla-cache"
    kept = sorted(f.name for f in xla.iterdir())
    assert first["jax_cache"] is None and second["jax_cache"] is None
    assert first["aot_stores"] >= 1 and first["aot_hits"] == 0, first
    assert kept and all(n.startswith("unirep-port-aot-") for n in kept), kept  # no JAX entries
    assert len(kept) == first["aot_stores"]
    assert second["aot_hits"] == first["aot_stores"] and second["aot_stores"] == 0, second
    # what the second process still compiled is the first's other requests (the probes it
    # timed: jax_port.probes, read back from <cache>/probes.json here), not the engine's
    assert second["compiles"] == 0, second
    _same_reps(tmp_path / "a.npz", tmp_path / "b.npz")


def test_a_library_call_keeps_nothing_with_the_cache_off(cache_home, fasta, tmp_path):
    """The check above fails with ``UNIREP_PORT_NO_COMPILE_CACHE=1``: no folder is made, and
    the second process compiles its executables again."""
    first = _library_run(cache_home, fasta, tmp_path / "a.npz", UNIREP_PORT_NO_COMPILE_CACHE="1")
    second = _library_run(cache_home, fasta, tmp_path / "b.npz", UNIREP_PORT_NO_COMPILE_CACHE="1")
    assert not (cache_home / "xla-cache").exists()
    assert first["aot_stores"] == second["aot_stores"] == second["aot_hits"] == 0
    assert second["compiles"] >= 1, second
    _same_reps(tmp_path / "a.npz", tmp_path / "b.npz")


def test_an_unwritable_executables_folder_leaves_the_call_working(cache_home, fasta, tmp_path):
    """Where ``<cache>/xla-cache`` cannot be made (a file stands there; permissions do not stop
    root, who runs CI), the call answers as without a folder, the same bits, and stores nothing."""
    (cache_home / "xla-cache").write_text("not a folder")
    blocked = _library_run(cache_home, fasta, tmp_path / "a.npz")
    assert blocked["aot_stores"] == 0 and blocked["compiles"] >= 1, blocked
    assert (cache_home / "xla-cache").read_text() == "not a folder"
    assert not list(cache_home.glob(".xla-cache*"))  # nothing half-written beside it
    _library_run(cache_home, fasta, tmp_path / "b.npz", UNIREP_PORT_NO_COMPILE_CACHE="1")
    _same_reps(tmp_path / "a.npz", tmp_path / "b.npz")


def test_prune_removes_the_least_recently_used_executables_only(tmp_path):
    """``aot_cache.prune``: oldest (by last load or store) first until the rest fit; the file
    just stored is kept whatever its age; other files of the folder are not touched."""
    from unirep_port.jax_port import aot_cache

    files = []
    for i in range(5):
        f = tmp_path / f"unirep-port-aot-{i}.xla"
        f.write_bytes(b"x" * 100)
        os.utime(f, (1000 + i, 1000 + i))  # 0 is the least recently used
        files.append(f)
    other = tmp_path / "unirep-port-prepared-a.bin"
    other.write_bytes(b"y" * 10_000)
    os.utime(other, (1, 1))
    removed = aot_cache.prune(tmp_path, keep=files[0], max_bytes=250)
    assert removed == [files[1], files[2], files[3]]
    assert [f.exists() for f in files] == [True, False, False, False, True]
    assert other.exists()
    assert aot_cache.prune(tmp_path, max_bytes=250) == []  # 200 bytes left: nothing to do


def test_a_warm_call_finds_its_executable_without_hashing(published, tmp_path, monkeypatch):
    """A call whose executable this process already holds takes it by ``aot_cache._fast_key``:
    no key is hashed and no folder is looked at (both made to fail here), and the answer is the
    first call's bits. A call of another shape (4 rows, not 8) is not taken for it: it reaches
    the full key, and fails there."""
    from jobs import random_seqs

    from unirep_port import jax_port
    from unirep_port.jax_port import aot_cache, compile_cache, engine, model

    m = model.as_model(jax_port.from_canonical(published(64)), 64)
    toks = jax_port.encode(random_seqs(8, 40, 3))

    def boom(*a, **k):
        raise AssertionError("a warm call hashed a key or built a path")

    with compile_cache.executables_in(tmp_path):
        first = engine.run_reps(toks, m)
        assert list(tmp_path.glob("unirep-port-aot-*.xla")), "the first call stored nothing"
        monkeypatch.setattr(aot_cache, "_key", boom)
        monkeypatch.setattr(compile_cache, "executables_dir", boom)
        again = engine.run_reps(toks, m)
        with pytest.raises(AssertionError, match="hashed a key"):
            engine.run_reps(toks[:4], m)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_the_kernel_cpuinfo_is_read_once(monkeypatch, tmp_path):
    """``machine.cpu_identity`` of ``/proc/cpuinfo`` (asked on every ``reps`` call, by the
    executable keys and the layout probes) reads the file once per process; any other path is
    read every time (tests write their own)."""
    from unirep_port import machine

    reads = []
    real = machine.cpuinfo_lines

    def counted(path=machine.CPUINFO):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(machine, "cpuinfo_lines", counted)
    monkeypatch.setattr(machine, "_IDENTITY", {})
    first = machine.cpu_identity()
    assert machine.cpu_identity() == first
    assert reads.count("/proc/cpuinfo") == (1 if Path("/proc/cpuinfo").is_file() else 2)
    f = tmp_path / "cpuinfo"
    f.write_text("model name\t: A\nflags\t\t: x\n")
    assert machine.cpu_identity(f) == "flags\t\t: x\nmodel name\t: A\n"
    f.write_text("model name\t: B\nflags\t\t: y\n")
    assert machine.cpu_identity(f) == "flags\t\t: y\nmodel name\t: B\n"
