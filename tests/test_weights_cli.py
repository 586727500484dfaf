"""unirep_port.weights.cli handlers through a small argparse parser built with ``register``."""

from __future__ import annotations

import argparse

import numpy as np

from unirep_port.weights import load, random_params, save
from unirep_port.weights.cli import register


def _run(argv) -> int:
    parser = argparse.ArgumentParser(prog="unirep-port weights")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_and_convert(tmp_path, capsys):
    p = random_params(64)
    src = save(p, tmp_path / "a.safetensors", "canonical")
    assert _run(["info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "format: canonical" in out and "size: 64" in out and "OK" in out
    assert _run(["convert", str(src), str(tmp_path / "npy"), "--to", "tf1-npy"]) == 0
    assert np.array_equal(load(tmp_path / "npy")["embed_matrix"], p["embed_matrix"])
    assert _run(["convert", str(src), str(tmp_path / "npy"), "--to", "tf1-npy"]) == 2
    assert "error:" in capsys.readouterr().err


def test_convert_bad_source_writes_nothing(tmp_path, capsys):
    p = random_params(64)
    del p["fully_connected/biases"]
    np.save(tmp_path / "only.npy", p["embed_matrix"])  # not a complete tf1-npy folder
    (tmp_path / "dir").mkdir()
    save(random_params(64), tmp_path / "dir" / "ok", "tf1-npy")
    (tmp_path / "dir" / "ok" / "fully_connected_biases:0.npy").unlink()
    dst = tmp_path / "out.safetensors"
    assert _run(["convert", str(tmp_path / "dir" / "ok"), str(dst), "--to", "canonical"]) == 2
    assert "fully_connected_biases:0.npy" in capsys.readouterr().err
    assert not dst.exists()
    assert _run(["info", str(tmp_path / "dir" / "ok")]) == 2


def test_fetch_prints_path(capsys):
    assert _run(["fetch", "--size", "64"]) == 0
    assert "unirep-64.safetensors" in capsys.readouterr().out
