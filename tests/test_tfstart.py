"""TensorFlow starts quietly, hides no real message, and the full tensorflow is installed.

The banner lines below are copied from TF 2.21.0 starting on an x86-64 Linux machine without a
GPU (the preamble and oneDNN lines from tensorflow-cpu and tensorflow alike, the CUDA lines from
the full ``tensorflow`` wheel: /tmp captures summarised in docs/results/tf-install.json); the kept
lines are made up to look like TF's warnings and errors.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

from unirep_port.tfstart import filter_banners, quiet_import

PREAMBLE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
)
ONEDNN = (
    "I0000 00:00:1795849077.527820    7334 port.cc:153] oneDNN custom operations are on. You may"
    " see slightly different numerical results due to floating-point round-off errors from"
    " different computation orders. To turn them off, set the environment variable"
    " `TF_ENABLE_ONEDNN_OPTS=0`.\n"
)
NO_DRIVER = (
    "I0000 00:00:1796113500.440964   10449 cudart_stub.cc:31] Could not find cuda drivers on your"
    " machine, GPU will not be used.\n"
)
CUINIT_303 = (
    "E0000 00:00:1796113504.733071   10449 cuda_platform.cc:52] failed call to cuInit: INTERNAL:"
    " CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)
REAL = [
    "E0000 00:00:1795849077.1 7334 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n",
    "W0000 00:00:1795849077.2 7334 port.cc:153] oneDNN custom operations are on. (as a warning)\n",
    "Traceback (most recent call last):\n",
    "2024-01-01 00:00:00.000000: E tensorflow/core/framework/op_kernel.cc:1] OOM\n",
]


def test_filter_drops_exactly_the_banners():
    text = PREAMBLE + ONEDNN + "".join(REAL) + PREAMBLE + ONEDNN
    assert filter_banners(text) == "".join(REAL)


def test_filter_drops_the_full_packages_cuda_banners_only():
    """The no-driver lines of the full wheel go; a cuInit failure with any other error stays."""
    other = CUINIT_303.replace("(303)", "(999)")
    text = PREAMBLE + ONEDNN + NO_DRIVER + PREAMBLE + ONEDNN + NO_DRIVER + CUINIT_303 + other
    assert filter_banners(text) == other
    assert filter_banners(REAL[0]) == REAL[0]  # the old short cuInit form is kept too


def test_filter_keeps_a_banner_with_extra_text():
    edited = PREAMBLE.replace("STDERR", "STDERR and then crashed")
    assert filter_banners(edited) == edited


def _fake_module(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_quiet_import_writes_back_real_lines(tmp_path, monkeypatch, capfd):
    real = "".join(REAL)
    _fake_module(
        tmp_path,
        monkeypatch,
        "_noisy_ok",
        f"""
        import os
        os.write(2, {(PREAMBLE + ONEDNN + real).encode()!r})
        VALUE = 7
        """,
    )
    assert quiet_import("_noisy_ok").VALUE == 7
    assert capfd.readouterr().err == real


def test_failed_import_writes_back_everything(tmp_path, monkeypatch, capfd):
    _fake_module(
        tmp_path,
        monkeypatch,
        "_noisy_fail",
        f"""
        import os
        os.write(2, {(PREAMBLE + ONEDNN).encode()!r})
        raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
        """,
    )
    with pytest.raises(ImportError, match="libtensorflow_framework"):
        quiet_import("_noisy_fail")
    assert capfd.readouterr().err == PREAMBLE + ONEDNN


@pytest.mark.tf
def test_the_full_tensorflow_is_installed_and_tensorflow_cpu_is_not():
    """The reference extra is ``tensorflow`` + ``tf-keras`` (pyproject.toml; the choice and its
    measurements: docs/results/tf-install.json). ``tensorflow-cpu`` beside it would overwrite the
    same files under ``site-packages/tensorflow`` (both wheels ship them), so either is fine alone,
    never both."""
    pytest.importorskip("tf_keras")
    assert importlib.metadata.version("tensorflow") == "2.21.0"  # pyproject's reference pin
    assert importlib.metadata.version("tf-keras") == "2.21.0"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("tensorflow-cpu")  # installed: rebuild the env (tox -r)


@pytest.mark.tf
def test_reference_starts_quietly(published):
    """A fresh process building the 64 reference graph and running it prints nothing on stderr."""
    pytest.importorskip("tensorflow")
    published(64)  # in the cache before the subprocess reads it
    script = (
        "from unirep_port import reference_tf, weights\n"
        "b = reference_tf.Babbler(weights.load_published(64), size=64)\n"
        "print(b.get_rep('MKT')[0].shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(64,)"
    assert out.stderr == "", f"TF start was not quiet:\n{out.stderr}"
