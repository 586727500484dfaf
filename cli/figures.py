"""``unirep-port figures``: speed, roofline and parity figures (``benchmarks.figures``)."""

from __future__ import annotations

import argparse
import sys

from unirep_port.benchmarks.figures import make_figures


def _cmd(args: argparse.Namespace) -> int:
    try:
        paths = make_figures(args.results, args.output, args.trace, args.parity)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: figures: {err}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


def register(subparsers) -> None:
    """Add the ``figures`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser("figures", help="speed/roofline/parity figures (PNG and SVG)")
    p.add_argument("results", nargs="+", help="benchmark results JSON (CPU and/or GPU)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--trace", help="npz with tf_h and jax_h, each (L, H), of one sequence")
    p.add_argument("--parity", help="parity-report.json with an 'error_vs_length' list")
    p.set_defaults(func=_cmd)
