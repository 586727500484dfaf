"""``unirep-port parity``: the full parity comparison and report without pytest.

The comparison is the verification library's (:func:`unirep_port.parity.run.main_parity`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unirep_port.parity.paths import results_dir
from unirep_port.parity.run import main_parity


def _cmd(args: argparse.Namespace) -> int:
    out_dir = Path(args.output) if args.output else results_dir()
    report = main_parity([int(s) for s in args.sizes], out_dir)
    print(report.markdown())
    print(f"report written to {out_dir / 'parity-report.json'}")
    return 0 if report.ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "parity", help="TF reference vs JAX port on the full panel; writes parity-report.json/.md"
    )
    p.add_argument(
        "--sizes", nargs="+", default=["1900", "256", "64"], choices=["1900", "256", "64"]
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="directory for the report and traces (default: $PARITY_REPORT_DIR, else "
        "parity_tests/results/)",
    )
    p.set_defaults(func=_cmd)
