"""``unirep_port.machine``: the one ``/proc/cpuinfo`` reader, and the keys made from it as before.

Expected values: the formulas each caller used before the reader was shared (issue 29), written
out here and applied to the same file, so a cache key computed before this change still matches
(the compiled-executable and probe keys, the reference cache's key) and the reports' CPU record
reads the same.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from unirep_port import machine
from unirep_port.jax_port import compile_cache, precision
from unirep_port.parity import refcache, report

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Example CPU @ 2.0GHz\n"
    "flags\t\t: fpu sse2 avx512_bf16 amx_bf16\n\nprocessor\t: 1\n"
    "model name\t: Example CPU @ 2.0GHz\nflags\t\t: fpu sse2 avx512_bf16 amx_bf16\n\n"
)


def _files(tmp_path) -> list[Path]:
    f = tmp_path / "cpuinfo"
    f.write_text(SYNTHETIC)
    real = Path(machine.CPUINFO)
    return [f, real] if real.is_file() else [f]


def test_the_readings_are_the_old_formulas(tmp_path):
    for f in _files(tmp_path):
        text = f.read_text()
        with open(f) as fh:  # compile_cache.cpu_identity, before
            identity = "".join(sorted({ln for ln in fh if ln.startswith(("model name", "flags"))}))
        assert machine.cpu_identity(f) == identity
        model = next(ln for ln in text.splitlines() if ln.startswith("model name"))
        flags = next(ln for ln in text.splitlines() if ln.startswith("flags"))
        assert machine.cpu_lines(f) == (model, flags)  # refcache._cpu, before
        assert machine.cpu_model(f) == model.split(":", 1)[1].strip()  # harness / report
        assert machine.cpu_flags(f) == flags.split(":", 1)[1].split()  # report / precision
    assert machine.cpu_flags(tmp_path / "absent") == []
    assert machine.cpu_lines(tmp_path / "absent") is None


def test_the_callers_read_through_it(tmp_path, monkeypatch):
    f = tmp_path / "cpuinfo"
    f.write_text(SYNTHETIC)
    monkeypatch.setattr(machine, "CPUINFO", str(f))
    for fn in (machine.cpuinfo_lines, machine.cpu_model, machine.cpu_flags):
        monkeypatch.setattr(fn, "__defaults__", (str(f),))
    for fn in (machine.cpu_lines, machine.cpu_identity, machine.describe):
        monkeypatch.setattr(fn, "__defaults__", (str(f),))
    lines = SYNTHETIC.splitlines()
    assert compile_cache.cpu_identity() == "".join(sorted({lines[2] + "\n", lines[3] + "\n"}))
    assert refcache._cpu() == lines[2] + "|" + hashlib.sha256(lines[3].encode()).hexdigest()[:16]
    info = report.cpu_info()
    assert info["model"] == "Example CPU @ 2.0GHz" and info["flags"][-1] == "amx_bf16"
    precision.cpu_bf16_path.cache_clear()
    try:
        assert precision.cpu_bf16_path(str(f)) == "amx_bf16"
    finally:
        precision.cpu_bf16_path.cache_clear()


def _cpuinfo_readers(paths) -> list[str]:
    """Files that hold the path ``/proc/cpuinfo`` as a string of its own (to open it); prose
    that mentions it in a message or docstring does not count."""
    return [
        p.name
        for p in paths
        if any(
            isinstance(n, ast.Constant) and n.value == "/proc/cpuinfo"
            for n in ast.walk(ast.parse(p.read_text(), str(p)))
        )
    ]


@pytest.mark.parametrize("planted", [False, True])
def test_one_reader(tmp_path, planted):
    """Only ``src/unirep_port/machine.py`` names ``/proc/cpuinfo`` in code (issue 29: the parity
    report and the benchmark harness each parsed it, and four more places did too)."""
    shipped = [
        p
        for d in (
            "src",
            "cli",
            "embedding",
            "porting",
            "jax_port",
            "parity_tests",
            "benchmarks",
            "weights",
        )
        for p in (ROOT / d).rglob("*.py")
        if "tests" not in p.relative_to(ROOT).parts
    ]
    if planted:
        probe = tmp_path / "probe.py"
        probe.write_text('"""Reads /proc/cpuinfo."""\nTEXT = open("/proc/cpuinfo").read()\n')
        shipped.append(probe)
    want = ["machine.py", "probe.py"] if planted else ["machine.py"]
    assert sorted(_cpuinfo_readers(shipped)) == want
