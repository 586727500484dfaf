"""``unirep-port profile``: cProfile an implementation (:mod:`unirep_port.benchmarks.profile`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from unirep_port.benchmarks.adapters import IMPLS, Unavailable
from unirep_port.benchmarks.profile import profile
from unirep_port.cli import compile_cache


def _cmd(args: argparse.Namespace) -> int:
    if args.impl == "reps":
        return _cmd_reps(args)
    compile_cache.setup(args)
    try:
        table = _run(args)
    except (OSError, ValueError, Unavailable) as err:
        print(f"error: profile: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {args.output} (view with: snakeviz {args.output})")
    return 0


def _cmd_reps(args: argparse.Namespace) -> int:
    """Profile a whole ``unirep-port reps`` run in a fresh process, by phase."""
    from unirep_port.benchmarks.profile_reps import profile_reps, table

    if not args.reps_args:
        print(
            "error: profile --impl reps needs --reps-args 'INPUT.fasta -o OUT.npz ...'",
            file=sys.stderr,
        )
        return 2
    env = {"UNIREP_PORT_NO_COMPILE_CACHE": "1"} if args.no_compile_cache else None
    try:
        res = profile_reps(shlex.split(args.reps_args), args.output, env=env)
    except (OSError, ValueError) as err:
        print(f"error: profile: {err}", file=sys.stderr)
        return 2
    print(table(res))
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
    p.add_argument(
        "--impl",
        default="jax",
        help="tf, jax, reps (a whole 'unirep-port reps' run in a fresh process, by phase; "
        "needs --reps-args), or one of " + ", ".join(IMPLS),
    )
    p.add_argument("--reps-args", help="with --impl reps: the reps arguments, one quoted string")
    p.add_argument("--workload", default="paper", help="paper (10 x 10 aa) or a workload name")
    p.add_argument("--size", type=int, choices=[1900, 256, 64], default=1900)
    p.add_argument("--weights", choices=["auto", "published", "random"], default="auto")
    p.add_argument("--include-compile", action="store_true", help="profile the first call")
    p.add_argument("-o", "--output", required=True, help="output .prof file")
    compile_cache.add_argument(p)
    p.set_defaults(func=_cmd)
