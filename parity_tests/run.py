"""The full parity comparison for 1900, 256 and 64, usable without pytest (``unirep-port parity``).

``tox -e parity`` runs the same functions through pytest (``test_parity_full.py``), plus the
kill rate, the weight-validation gates, hypothesis-generated batches and downstream parity.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from unirep_port.parity.compare import ParityResult
from unirep_port.parity.engine import run_parity
from unirep_port.parity.panel import parity_panel
from unirep_port.parity.report import Report

TRACE_ID = "avGFP_WT"


def size_parity(
    size: int,
    params: dict,
    babbler=None,
    trace_dir: str | None = None,
    max_length: int = 2000,
) -> ParityResult:
    """TF reference vs JAX port on the full panel for one size (published weights ``params``).

    When ``trace_dir`` is given, the per-position hidden states of avGFP wild type from both
    implementations are saved to ``parity-trace-<size>.npz`` (arrays ``tf_h``, ``jax_h``) for the
    rep-trace figure. ``max_length``: the panel's longest random sequence (``parity_panel``).
    """
    panel = parity_panel(max_length=max_length)
    result, ref, port = run_parity(params, params, panel, size, babbler=babbler)
    if trace_dir is not None:
        i = [pid for pid, _ in panel].index(TRACE_ID)
        Path(trace_dir).mkdir(parents=True, exist_ok=True)
        np.savez(Path(trace_dir) / f"parity-trace-{size}.npz", tf_h=ref.hs[i], jax_h=port.hs[i])
    return result


def main_parity(sizes, out_dir: str | Path) -> Report:
    from unirep_port import weights

    report = Report()
    for size in sizes:
        result = size_parity(size, weights.load_published(size), trace_dir=out_dir)
        report.add_parity(result)
        print(f"{size}: {'PASS' if result.ok else 'FAIL'}", file=sys.stderr)
    report.write(out_dir)
    return report
