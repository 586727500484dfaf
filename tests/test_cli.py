"""The ``unirep-port`` command line: reps end to end, errors, and the subcommand wiring."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import RUN_H, assert_close

from unirep_port.cli import build_parser, main

GFP = "SKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTLVTTLSYGVQCFSRYPDHMKQHDFFKSAMPEGYV"


def _fasta(tmp_path, text):
    p = tmp_path / "in.fasta"
    p.write_text(text)
    return p


def test_every_subcommand_is_wired():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    assert {"weights", "reps", "parity", "profile", "figures", "evotune"} <= set(sub)
    wsub = sub["weights"]._subparsers._group_actions[0].choices
    assert {"fetch", "convert", "info", "validate"} <= set(wsub)


def test_evotune_subcommand_is_the_real_one():
    """The evotune subcommand is the real one, not an "unavailable" stub."""
    sub = build_parser()._subparsers._group_actions[0].choices
    assert sub["evotune"].get_default("func").__module__ == "unirep_port.cli.evotune"


@pytest.mark.tf
def test_reps_jax_and_tf_agree_and_keep_ids(tmp_path):
    """Expected values: the TF reference's batched reps of the same file (64 model)."""
    fa = _fasta(tmp_path, f">a first\nMKTAYIAKQRQ\nISFVKSHF\n>b\nmkvl\n>gfp\n{GFP}\n")
    out_j, out_t = tmp_path / "j.npz", tmp_path / "t.npz"
    assert main(["reps", str(fa), "-o", str(out_j), "--size", "64", "--quiet"]) == 0
    assert main(["reps", str(fa), "-o", str(out_t), "--size", "64", "--impl", "tf", "--quiet"]) == 0
    j, t = np.load(out_j), np.load(out_t)
    assert list(j["ids"]) == ["a", "b", "gfp"] == list(t["ids"])
    for k in ("h_avg", "h_final"):
        assert j[k].shape == (3, 64)
        assert_close(j[k], t[k], RUN_H, k)
    scale = np.abs(t["c_final"]).max(axis=1, keepdims=True)
    assert (np.abs(j["c_final"] - t["c_final"]) / scale).max() <= 1e-5


def test_reps_bad_letter_names_record_and_writes_nothing(tmp_path, capsys):
    fa = _fasta(tmp_path, ">ok\nMKV\n>broken_one\nMKT*AY\n")
    out = tmp_path / "o.npz"
    assert main(["reps", str(fa), "-o", str(out), "--size", "64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "broken_one" in err and "'*' at 3" in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [fa]  # no temporary leftovers


def test_reps_refuses_to_overwrite_without_force(tmp_path, capsys):
    fa = _fasta(tmp_path, ">x\nMKV\n")
    out = tmp_path / "o.npz"
    out.write_bytes(b"keep me")
    assert main(["reps", str(fa), "-o", str(out), "--size", "64", "--quiet"]) == 2
    assert out.read_bytes() == b"keep me"
    assert "--force" in capsys.readouterr().err
    assert main(["reps", str(fa), "-o", str(out), "--size", "64", "--quiet", "--force"]) == 0
    assert np.load(out)["h_avg"].shape == (1, 64)


def test_empty_fasta_is_an_error(tmp_path, capsys):
    fa = _fasta(tmp_path, "")
    assert main(["reps", str(fa), "-o", str(tmp_path / "o.npz"), "--size", "64", "--quiet"]) == 2
    assert "no FASTA records" in capsys.readouterr().err


def test_reps_output_that_is_a_directory_is_an_error_naming_it(tmp_path, capsys):
    """``-o DIR --force`` with DIR an existing folder: an error naming it, no traceback, and the
    folder and its contents untouched."""
    fa = _fasta(tmp_path, ">x\nMKV\n")
    out = tmp_path / "somedir"
    out.mkdir()
    (out / "keep.txt").write_text("keep me")
    assert main(["reps", str(fa), "-o", str(out), "--size", "64", "--quiet", "--force"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "is a directory" in err
    assert (out / "keep.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fasta", "somedir"]


def test_reps_progress_in_a_log_is_a_few_lines_not_carriage_returns(tmp_path, capsys):
    """stderr is not a TTY here (pytest captures it): no ``\\r`` redraws, at most a start and a
    summary line per run (the bar is for terminals; ``unirep_port.progress``)."""
    fa = _fasta(tmp_path, "".join(f">s{i}\n{GFP[: 10 + i]}\n" for i in range(40)))
    out = tmp_path / "o.npz"
    assert main(["reps", str(fa), "-o", str(out), "--size", "64", "--batch-size", "4"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err, err[:300]
    lines = [line for line in err.splitlines() if line.startswith("reps (jax)")]
    assert 1 <= len(lines) <= 3, err
    assert "tok" in lines[-1]


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_reps_on_a_missing_input_is_one_line_naming_it(tmp_path, capsys, what):
    """``unirep-port reps missing.fa -o out.npz``: exit 2, one ``error:`` line naming the file, no
    traceback, nothing written (issue 29: it ended in a ``FileNotFoundError`` traceback)."""
    src = tmp_path / "missing.fa"
    if what == "folder":
        src.mkdir()
    out = tmp_path / "o.npz"
    assert main(["reps", str(src), "-o", str(out), "--size", "64", "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(src) in lines[0], err
    assert not out.exists()


def test_a_failed_run_does_not_print_done(tmp_path, capsys):
    """A run that stops on a bad sequence ends its progress log with a failure line, not the
    ``done, 0 tok`` summary of a finished run (issue 29)."""
    fa = _fasta(tmp_path, ">ok\nMKV\n>broken_one\nMKT1AY\n")
    assert main(["reps", str(fa), "-o", str(tmp_path / "o.npz"), "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "broken_one" in err
    progress = [line for line in err.splitlines() if line.startswith("reps (jax)")]
    assert progress and not any("done" in line for line in progress), err
    assert "failed" in progress[-1], err
