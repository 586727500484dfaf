"""FASTA input as users have it (issue 12, item 5): compression by magic bytes, stdin, BOM and
CRLF, duplicate ids, ``--strip-stop``, and no temporary directory left after SIGTERM/SIGINT.

Expected records are written out by hand in each test; expected reps come from the same
engine on the plain LF file (the input handling must not change a single bit).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from unirep_port.alphabet import STANDARD_AA
from unirep_port.cli import main
from unirep_port.fasta import iter_raw, read_fasta

PLAIN = b">a first record\nMKV\nLL\n>b\nmm\n"
EXPECTED = [("a", "MKVLL"), ("b", "MM")]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    "name,pack",
    [
        ("x.fa.gz", gzip.compress),
        ("no-extension", gzip.compress),  # detected by magic bytes, not the name
        ("x.fa", lambda b: gzip.compress(b[:12]) + gzip.compress(b[12:])),  # bgzip: 2 members
        ("x.fa.bz2", bz2.compress),
        ("x.fa.xz", lzma.compress),
    ],
)
def test_compressed_input_detected_by_content(tmp_path, name, pack):
    assert list(read_fasta(_write(tmp_path, name, pack(PLAIN)))) == EXPECTED


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + PLAIN,  # UTF-8 byte-order mark
        PLAIN.replace(b"\n", b"\r\n"),  # Windows line ends
        b"\xef\xbb\xbf" + PLAIN.replace(b"\n", b"\r\n"),  # both: what Notepad saves
        PLAIN.replace(b"\n", b"\r"),  # classic Mac line ends
        b"\n  \n" + PLAIN.replace(b">b", b"  >b"),  # blank lines, indented header
    ],
    ids=["bom", "crlf", "bom+crlf", "cr", "indented"],
)
def test_bom_and_line_ends(tmp_path, data):
    assert list(read_fasta(_write(tmp_path, "x.fa", data))) == EXPECTED


def test_stdin_dash(monkeypatch):
    for data in (PLAIN, gzip.compress(b"\xef\xbb\xbf" + PLAIN.replace(b"\n", b"\r\n"))):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert list(read_fasta("-")) == EXPECTED


def test_duplicate_ids_name_both_records(tmp_path):
    p = _write(tmp_path, "d.fa", b">a\nMK\n>b\nMM\n>c\nKK\n>b desc\nVV\n")
    with pytest.raises(ValueError) as e:
        list(read_fasta(p))
    msg = str(e.value)
    assert str(p) in msg and "'b'" in msg
    assert "record #4 (line 7)" in msg and "record #2 (line 3)" in msg
    assert len(list(read_fasta(p, unique_ids=False))) == 4


def test_strip_stop_removes_exactly_one_trailing_star(tmp_path):
    p = _write(tmp_path, "t.fa", b">p\nMKV*\n>q\nMM\n")
    assert list(read_fasta(p, strip_stop=True)) == [("p", "MKV"), ("q", "MM")]
    with pytest.raises(ValueError, match=r"'p'.*'\*' at 3.*--strip-stop"):
        list(read_fasta(p))  # without the flag: still an error, and it names the remedy
    cases = {
        b">two\nMKV**\n": r"'two'.*'\*' at 3",  # only one is removed
        b">inner\nMK*V*\n": r"'inner'.*'\*' at 2",  # an internal stop stays an error
        b">only\n*\n": r"'only' is empty",
        b">ws\nMKV*X\n": r"'ws'.*'\*' at 3",  # not trailing: untouched
    }
    for data, pattern in cases.items():
        with pytest.raises(ValueError, match=pattern):
            list(read_fasta(_write(tmp_path, "u.fa", data), strip_stop=True))


def test_structure_errors_name_file_and_line(tmp_path):
    cases = {
        "bad-utf8.fa": (b">a\nMK\n>b\nM\xff\n", r"bad-utf8.fa: line 4 is not UTF-8.*0xff"),
        "headless.fa": (b"\xef\xbb\xbfMKV\n>a\nMM\n", r"headless.fa:1: sequence data before"),
        "empty.fa.gz": (gzip.compress(b""), "no FASTA records"),
        "cut.fa.gz": (gzip.compress(PLAIN * 50)[:-30], "cut.fa.gz: cannot read compressed data"),
        "z.fa.zst": (b"\x28\xb5\x2f\xfd" + b"\0" * 20, "zstd-compressed"),
    }
    for name, (data, pattern) in cases.items():
        with pytest.raises(ValueError, match=pattern):
            list(iter_raw(_write(tmp_path, name, data)))
    with pytest.raises(ValueError, match="is a directory"):
        list(iter_raw(tmp_path))


def test_cli_reads_users_files_bitwise_like_plain(tmp_path, capsys):
    """Expected values: the same engine's reps of the plain LF file."""
    ref = tmp_path / "ref.npz"
    assert (
        main(
            [
                "reps",
                str(_write(tmp_path, "p.fa", PLAIN)),
                "-o",
                str(ref),
                "--size",
                "64",
                "--quiet",
            ]
        )
        == 0
    )
    messy = gzip.compress(b"\xef\xbb\xbf" + PLAIN.replace(b"\n", b"\r\n").replace(b"mm", b"mm*"))
    out = tmp_path / "messy.npz"
    src = _write(tmp_path, "messy.txt", messy)
    assert main(["reps", str(src), "-o", str(out), "--size", "64", "--quiet", "--strip-stop"]) == 0
    a, b = np.load(ref), np.load(out)
    assert list(b["ids"]) == ["a", "b"]
    for k in ("h_avg", "h_final", "c_final"):
        assert np.array_equal(a[k], b[k])


def test_cli_duplicate_ids_exit_2_and_leave_nothing(tmp_path, capsys):
    src = _write(tmp_path, "d.fa", b">x\nMK\n>y\nMM\n>x\nKK\n")
    out = tmp_path / "o.npz"
    assert main(["reps", str(src), "-o", str(out), "--size", "64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "duplicate id 'x'" in err and "record #3 (line 5)" in err and "record #1 (line 1)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.fa"]


def test_cli_stdin_in_a_real_process(tmp_path):
    out = tmp_path / "o.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "unirep_port.cli",
            "reps",
            "-",
            "-o",
            str(out),
            "--size",
            "64",
            "--quiet",
        ],
        input=gzip.compress(PLAIN),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert list(np.load(out)["ids"]) == ["a", "b"]


def _big_fasta(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    aa = np.frombuffer(STANDARD_AA.encode(), np.uint8)
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(f">s{i}\n{aa[rng.integers(0, 20, 150)].tobytes().decode()}\n")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_run_removes_temporaries_and_keeps_old_output(tmp_path, sig, code):
    """A real ``reps`` process, signalled once its first 1,024 reps are on disk."""
    src = tmp_path / "big.fa"
    _big_fasta(src, 30_000)  # ~4.5 M residues: far longer than the test waits
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous output")
    proc = subprocess.Popen(
        [
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
            "--force",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size for p in tmp_path.glob(".unirep-npz-*/h_avg.raw")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no rows written in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err.decode()[-2000:]
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.fa", "o.npz"]
