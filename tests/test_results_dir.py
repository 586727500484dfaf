"""Run outputs (reports, traces) go to a results folder, never the current directory."""

from __future__ import annotations

from pathlib import Path

from unirep_port import parity
from unirep_port.parity.paths import results_dir


def test_default_is_the_package_results_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("PARITY_REPORT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    expected = Path(parity.__file__).resolve().parent / "results"
    assert results_dir() == expected
    assert tmp_path not in results_dir().parents


def test_environment_variable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("PARITY_REPORT_DIR", str(tmp_path / "out"))
    assert results_dir() == tmp_path / "out"
    monkeypatch.setenv("PARITY_REPORT_DIR", "")  # empty means unset, not the current directory
    assert results_dir().name == "results"


def test_cli_parity_default_output_is_not_set(monkeypatch):
    import argparse

    from unirep_port.cli import parity as run

    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    args = parser.parse_args(["parity"])
    assert args.output is None  # resolved by results_dir() at run time
