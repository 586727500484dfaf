"""The porting guide's code runs as printed and says what the guide says it says.

``docs/porting.md``'s first code block (checkpoint -> automatic port -> PASS) and second (a hand
port with the reset gate after the matmul -> FAIL) run against a TF1 checkpoint made here by
``tf.compat.v1.train.Saver`` (TF 2.21.0), as a training job would have left it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "porting.md"
MAKE_CKPT = """
from unirep_port.tfstart import import_tensorflow
tf = import_tensorflow(); v1 = tf.compat.v1
with tf.Graph().as_default():
    x = v1.placeholder(tf.float32, [None, None, 16]); n = v1.placeholder(tf.int32, [None])
    cell = v1.nn.rnn_cell.GRUCell(256, kernel_initializer=v1.glorot_uniform_initializer(seed=0),
                                  bias_initializer=v1.random_normal_initializer(0, 0.1, seed=1))
    v1.nn.dynamic_rnn(cell, x, sequence_length=n, dtype=tf.float32)
    with v1.Session() as s:
        s.run(v1.global_variables_initializer()); v1.train.Saver().save(s, "ckpt/model")
"""


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_route_is_under_30_lines():
    code = [ln for ln in _blocks()[0].splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(code) < 30, len(code)


def test_the_guide_runs_pass_then_fail(tmp_path):
    route, hand = _blocks()[:2]
    (tmp_path / "make_ckpt.py").write_text(MAKE_CKPT)
    (tmp_path / "guide.py").write_text(route + "\n" + hand)
    env_run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=300)
    made = subprocess.run([sys.executable, "make_ckpt.py"], **env_run)
    assert made.returncode == 0, made.stderr[-2000:]
    run = subprocess.run([sys.executable, "guide.py"], **env_run)
    assert run.returncode == 0, run.stderr[-3000:]
    verdicts = re.findall(r"Verdict: \*\*(PASS|FAIL)\*\*", run.stdout)
    assert verdicts == ["PASS", "FAIL"], run.stdout
    assert "outputs: drift" in run.stdout and "h_final: drift" in run.stdout
