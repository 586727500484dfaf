"""The console script's exit after ``reps`` (``unirep_port.cli.entry``).

Once ``reps`` has closed its output, the process ends by ``os._exit`` instead of the
interpreter's teardown (0.25 s of a 1.2 s one-sequence run on the 2-core EPYC), after running
what a normal exit runs that matters: the ``atexit`` handlers and the flush of stdout/stderr.
In-process tests replace ``os._exit`` and ``atexit._run_exitfuncs`` to see which way ``entry``
ends (pytest's own exit handlers must not run mid-session); one fresh process runs the real
thing. All on the real published 64 weights.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from unirep_port import cli


class Exited(Exception):
    pass


@pytest.fixture
def fasta(tmp_path, published):
    published(64)
    f = tmp_path / "in.fasta"
    f.write_text(">a\nMKTAYIAKQR\n>b\nMSEQNNTEMTFQIQRIYTKDISFEAPNAPHVFQKDW\n")
    return f


@pytest.fixture
def ends(monkeypatch):
    """What ``entry`` did at the end: [("atexit",), ("os._exit", rc)] in order."""
    seen: list[tuple] = []
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: seen.append(("atexit",)))

    def fake_exit(rc):
        seen.append(("os._exit", rc))
        raise Exited

    monkeypatch.setattr(os, "_exit", fake_exit)
    return seen


def _argv(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["unirep-port", *args])


def _reps(fasta, out) -> list[str]:
    return ["reps", str(fasta), "-o", str(out), "--size", "64", "--quiet"]


def test_reps_ends_by_os_exit_after_atexit(monkeypatch, fasta, tmp_path, ends, capsys):
    _argv(monkeypatch, *_reps(fasta, tmp_path / "r.npz"))
    with pytest.raises(Exited):
        cli.entry()
    assert ends == [("atexit",), ("os._exit", 0)]
    assert "wrote 2 sequences" in capsys.readouterr().out
    with np.load(tmp_path / "r.npz") as z:  # closed before the exit
        assert z["h_avg"].shape == (2, 64) and list(z["ids"]) == ["a", "b"]


def test_a_live_thread_gets_the_normal_exit(monkeypatch, fasta, tmp_path, ends):
    _argv(monkeypatch, *_reps(fasta, tmp_path / "r.npz"))
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)  # not a daemon: a normal exit waits for it
    t.start()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.entry()
    finally:
        stop.set()
        t.join()
    assert exc.value.code == 0 and ends == []


@pytest.mark.parametrize("case", ["error", "tf", "other-command"])
def test_other_ends_are_normal(monkeypatch, fasta, tmp_path, ends, case):
    """A failing ``reps`` (a bad letter: exit 2, nothing written), ``reps --impl tf`` and other
    subcommands exit the normal way."""
    if case == "error":
        fasta.write_text(">bad\nMKT1\n")
        _argv(monkeypatch, *_reps(fasta, tmp_path / "r.npz"))
        want = 2
    elif case == "tf":
        pytest.importorskip("tensorflow")
        _argv(monkeypatch, *_reps(fasta, tmp_path / "r.npz"), "--impl", "tf")
        want = 0
    else:
        _argv(monkeypatch, "weights", "fetch", "--help")
        want = 0
    with pytest.raises(SystemExit) as exc:
        cli.entry()
    assert exc.value.code == want and ends == []
    if case == "error":
        assert not (tmp_path / "r.npz").exists()


def test_the_console_script_flushes_and_runs_exit_handlers(fasta, tmp_path):
    """The real exit, in a fresh process with stdout a pipe (block-buffered): the summary line
    arrives, an ``atexit`` handler registered before the run has run, the output is whole."""
    from unirep_port.weights import published as pub

    home = pub.cache_sharing_weights(tmp_path / "cache")
    flag = tmp_path / "atexit-ran"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(flag)!r}, 'w').write('ran'))\n"
        "sys.argv = ['unirep-port', *sys.argv[1:]]\n"
        "from unirep_port.cli import entry\n"
        "entry()\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, *_reps(fasta, tmp_path / "r.npz")],
        env={**os.environ, "UNIREP_PORT_CACHE": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "wrote 2 sequences" in res.stdout
    assert flag.read_text() == "ran"
    with np.load(tmp_path / "r.npz") as z:
        assert z["h_avg"].shape == (2, 64)
