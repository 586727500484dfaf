"""A non-editable install imports the same package from the repository root as from anywhere.

Python looks in the current folder first. When the checkout had a partial ``unirep_port/`` folder
at its root (the design card's folders joined it only in an install), ``from unirep_port import
reference_tf`` run from the root next to a ``pip install .`` failed with ``ImportError`` (issue
29). The package's own modules now live in ``src/unirep_port/`` and every other layer in a folder
of its own name, so no folder at the root is called ``unirep_port``. This test builds the wheel
from a copy of the sources, installs it into a fresh virtual environment (this environment's
packages below it, read through a ``.pth`` line, so no index is needed) and imports from both
folders. The editable install the suite runs under is checked by every other test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = (".git", ".tox", "build", "*.egg-info", "__pycache__", ".hypothesis", ".venv")
# The names of issue 29's example, and one module from each kind of folder: the bottom
# (src/unirep_port: read_fasta), and the layers' own folders (reference_tf, jax_port, parity, cli).
SCRIPT = """
import importlib, importlib.machinery, json, sys
import unirep_port
from unirep_port import reference_tf, read_fasta
subs = ["unirep_port.jax_port", "unirep_port.parity", "unirep_port.cli"]
loaded = {m.__name__: m.__file__ for m in map(importlib.import_module, subs)}
loaded["unirep_port"] = unirep_port.__file__
loaded["unirep_port.reference_tf"] = reference_tf.__file__
loaded["read_fasta"] = sys.modules[read_fasta.__module__].__file__
first = importlib.machinery.PathFinder.find_spec("unirep_port", sys.path).origin
others = sorted(
    n for n, m in sys.modules.items()
    if n.startswith("unirep_port") and getattr(m, "__file__", None)
    and not m.__file__.startswith(sys.prefix)
)
print(json.dumps({"loaded": loaded, "first_found": first, "not_installed": others}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Python of a fresh venv holding the package as a wheel install (not editable)."""
    pytest.importorskip("setuptools", minversion="77", reason="builds the wheel offline")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*SKIP))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", tmp / "wh"]
        + [src],
        check=True,
    )
    (wheel,) = (tmp / "wh").glob("unirep_port-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], check=True
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz_test_env_packages.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python


def _imports_from(python: Path, cwd: Path) -> dict:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(cwd)),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    out = subprocess.run(
        [python, "-c", SCRIPT], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"from {cwd}:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_root_imports_the_installed_package(installed, tmp_path):
    site = subprocess.run(
        [installed, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    from_root = _imports_from(installed, ROOT)
    from_elsewhere = _imports_from(installed, tmp_path)
    # No trap: from the root, Python's path search finds the install first, as it does elsewhere.
    assert not (ROOT / "unirep_port").exists()
    assert from_root["first_found"] == from_elsewhere["first_found"]
    assert from_root["first_found"] == f"{site}/unirep_port/__init__.py"
    # ... and both folders load every module from the install, none from the checkout.
    assert from_root["loaded"] == from_elsewhere["loaded"]
    for name, file in from_root["loaded"].items():
        assert file.startswith(site + "/unirep_port/"), (name, file)
    assert from_root["not_installed"] == [], from_root["not_installed"]
