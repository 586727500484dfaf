"""``unirep-port report``: render the HTML pages again from results folders (e.g. a CI artifact).

``unirep-port report RESULTS_DIR`` writes ``RESULTS_DIR/parity-report.html`` from the
``parity-report.json`` there (``unirep_port.parity.render``); ``--bench DIR`` writes
``DIR/index.html`` from the benchmark results JSON files there (``benchmarks.html``).
"""

from __future__ import annotations

import argparse
import sys

import jinja2  # noqa: F401  (so that a missing Jinja2 marks the subcommand unavailable)


def _cmd(args: argparse.Namespace) -> int:
    if args.results_dir is None and args.bench is None:
        print("error: report: give RESULTS_DIR and/or --bench DIR", file=sys.stderr)
        return 2
    try:
        if args.results_dir is not None:
            from unirep_port.parity.render import rerender

            print(rerender(args.results_dir))
        if args.bench is not None:
            from unirep_port.benchmarks.html import write_bench_html

            print(write_bench_html(args.bench))
    except (OSError, ValueError) as err:
        print(f"error: report: {err}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    """Add the ``report`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "report", help="render parity-report.html (and the benchmark index.html) from JSON"
    )
    p.add_argument(
        "results_dir", nargs="?", help="folder with parity-report.json (and parity traces)"
    )
    p.add_argument("--bench", metavar="DIR", help="benchmark results folder -> DIR/index.html")
    p.set_defaults(func=_cmd)
