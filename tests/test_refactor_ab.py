"""The refactor A/B (``benchmarks/refactor_ab.py``) on a real pair of revisions: HEAD against the
working tree's installed package, one small cell.

Expected: the same code on the same inputs and machine gives the same bits (XLA:CPU is
deterministic for a fixed program and batch), so ``bitwise_equal`` is True and every difference 0;
the before side really ran from its own install (the file the child imported lies under it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from unirep_port.benchmarks import refactor_ab

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None
    or subprocess.run(["git", "-C", str(refactor_ab.REPO), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0,
    reason="needs the repository's git history (a clone)",
)  # fmt: skip


def test_head_against_the_working_tree_gives_the_same_bits(tmp_path):
    out = tmp_path / "ab.json"
    argv = ["--before", "HEAD", "--sizes", "64", "--workloads", "grid-b1-l238", "grid-b8-l200"]
    assert refactor_ab.main([*argv, "--rounds", "1", "--warm", "1", "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert oct(os.stat(out).st_mode & 0o777) == "0o644"
    rec, rec8 = res["records"]
    assert (rec["size"], rec["workload"]) == (64, "grid-b1-l238")
    assert rec["bitwise_equal"] is True
    assert set(rec["max_abs_diff"].values()) == {0.0}
    before, after = rec["runs"]["before"][0], rec["runs"]["after"][0]
    assert "refactor-ab-" in before["file"] and "refactor-ab-" not in after["file"]
    assert len(before["warm_s"]) == 1 and rec["before_over_after_warm"] > 0
    # each child ran the library's default path: it kept its executables, in a folder of its own
    assert after["executables_stored"] >= 1, after
    # at 8 rows the layout is probed: by the first process (the before side in round 0) only;
    # the after side read its answer back, so both ran the same layout (same bits)
    assert before["probes_timed"] == after["probes_timed"] == 0  # one row never probes
    before8, after8 = rec8["runs"]["before"][0], rec8["runs"]["after"][0]
    assert before8["probes_timed"] >= 1 and after8["probes_timed"] == 0, (before8, after8)
    assert rec8["bitwise_equal"] is True


def test_compare_bits_names_the_largest_difference_per_output(tmp_path):
    a = [np.zeros((2, 3), np.float32) for _ in range(3)]
    b = [x.copy() for x in a]
    b[2][1, 0] = 0.25
    np.savez(tmp_path / "a.npz", *a)
    np.savez(tmp_path / "b.npz", *b)
    got = refactor_ab.compare_bits(tmp_path / "a.npz", tmp_path / "b.npz")
    assert got == {
        "bitwise_equal": False,
        "max_abs_diff": {"h_avg": 0.0, "h_final": 0.0, "c_final": 0.25},
    }


def test_a_failing_side_names_itself(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"seqs": ["MKT"], "size": 7, "warm": 1}))
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        refactor_ab.run_side(tmp_path, job, tmp_path / "out.npz")
    assert not Path(tmp_path / "out.npz").exists()
