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
TRACE_WITNESSES = 2  # float32 members drawn beside the port in the trace (each one oracle run)


def size_parity(
    size: int,
    params: dict,
    babbler=None,
    trace_dir: str | None = None,
    max_length: int = 2000,
) -> ParityResult:
    """TF reference vs JAX port on the full panel for one size (published weights ``params``).

    When ``trace_dir`` is given, the per-position hidden states of avGFP wild type from both
    implementations are saved to ``parity-trace-<size>.npz`` (arrays ``tf_h``, ``jax_h``, each
    (L+1, H)) for the rep-trace figure, with the float64 oracle's (``f64_h``) and
    ``TRACE_WITNESSES`` float32 ensemble members' (``member_h``, (members, L+1, H)), so the
    report can draw each one's drift from float64 per position beside the port's.
    ``max_length``: the panel's longest random sequence (``parity_panel``).
    """
    panel = parity_panel(max_length=max_length)
    result, ref, port = run_parity(params, params, panel, size, babbler=babbler)
    if trace_dir is not None:
        from unirep_port.parity.oracle import float32_ensemble, oracle_states

        i = [pid for pid, _ in panel].index(TRACE_ID)
        seq = dict(panel)[TRACE_ID]
        _, hs = oracle_states(params, seq, size)  # (L+1, layers, H); the last layer's h
        members = float32_ensemble(params, seq, size, members=TRACE_WITNESSES)
        Path(trace_dir).mkdir(parents=True, exist_ok=True)
        np.savez(
            Path(trace_dir) / f"parity-trace-{size}.npz",
            tf_h=ref.hs[i],
            jax_h=port.hs[i],
            f64_h=np.asarray(hs[:, -1]),
            member_h=np.stack(members.hs),
        )
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
