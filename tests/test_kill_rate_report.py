"""The kill-rate section of the parity report holds the whole matrix whatever ``-k`` selects.

A test of the suite's report machinery, not a verdict, so it runs with the unit tests and not in
``tox -e parity`` (whose report is always the whole matrix): one planted-bug test of
``parity_tests/tests/test_kill_rate.py`` is selected with ``-k`` in a child pytest, and its
report must still show every bug at every size (a module-global tally once reported 1/1 = 100%).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from unirep_port.parity.planted_bugs import BUG_NAMES

KILL_RATE = Path(__file__).resolve().parents[1] / "parity_tests" / "tests" / "test_kill_rate.py"


def test_kill_rate_does_not_depend_on_k_selection(tmp_path):
    # the matrix the child's report must hold: the kill-rate module's own sizes
    sizes = ast.literal_eval(re.search(r"^KILL_SIZES = (\[.*\])$", KILL_RATE.read_text(), re.M)[1])
    env = {**os.environ, "PARITY_REPORT_DIR": str(tmp_path)}
    sel = f"test_planted_bug_is_caught and {BUG_NAMES[0]} and 64"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", str(KILL_RATE), "-q", "-p", "no:cacheprovider", "-k", sel],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    sec = json.loads((tmp_path / "parity-report.json").read_text())["planted bugs (kill rate)"]
    assert len(sec["rows"]) == len(sizes) * len(BUG_NAMES), sec["summary"]
