"""``unirep-port profile``: cProfile an implementation (:mod:`unirep_port.benchmarks.profile`)."""

from __future__ import annotations

import argparse
import sys

from unirep_port.benchmarks.adapters import IMPLS, Unavailable
from unirep_port.benchmarks.profile import profile


def _cmd(args: argparse.Namespace) -> int:
    try:
        table = _run(args)
    except (OSError, ValueError, Unavailable) as err:
        print(f"error: profile: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {args.output} (view with: snakeviz {args.output})")
    return 0


def _run(args: argparse.Namespace) -> str:
    return profile(
        args.impl,
        args.workload,
        args.output,
        size=args.size,
        weights=args.weights,
        include_compile=args.include_compile,
    )


def register(subparsers) -> None:
    """Add the ``profile`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser("profile", help="cProfile an implementation (snakeviz-readable)")
    p.add_argument("--impl", default="jax", help="tf, jax, or one of " + ", ".join(IMPLS))
    p.add_argument("--workload", default="paper", help="paper (10 x 10 aa) or a workload name")
    p.add_argument("--size", type=int, choices=[1900, 256, 64], default=1900)
    p.add_argument("--weights", choices=["auto", "published", "random"], default="auto")
    p.add_argument("--include-compile", action="store_true", help="profile the first call")
    p.add_argument("-o", "--output", required=True, help="output .prof file")
    p.set_defaults(func=_cmd)
