"""The ``unirep-port evotune`` subcommand: fine-tune on a FASTA file, write canonical weights.

``unirep-port evotune family.fasta -o OUTDIR [--size 1900] [--epochs 20] [--batch-size 16]
[--lr 1e-5] [--holdout 0.1] [--seed 0] [--tbptt N] [--weights PATH]`` writes
``OUTDIR/tuned.safetensors`` (canonical format, loadable by ``weights.load``) and
``OUTDIR/history.json`` (per-epoch train/held-out loss and tokens/s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from unirep_port.atomic import atomic_file
from unirep_port.cli import compile_cache


def register(subparsers) -> None:
    """Add the ``evotune`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "evotune",
        help="fine-tune a UniRep model on a FASTA file (next-amino-acid loss, Adam)",
        description=__doc__.split("\n\n", 1)[0],
    )
    p.add_argument("input", metavar="INPUT.fasta", help="training sequences (FASTA)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument(
        "--size", type=int, default=None, choices=(1900, 256, 64), help="model size (default 1900)"
    )
    p.add_argument("--weights", default=None, help="start weights (any format); default published")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--holdout", type=float, default=0.1, help="held-out fraction (0: none)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tbptt", type=int, default=None, help="truncate backprop every N steps")
    p.add_argument("--checkpoint-every", type=int, default=0, help="epochs between checkpoints")
    p.add_argument("--force", action="store_true", help="overwrite outputs in OUTDIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    compile_cache.add_argument(p)
    p.set_defaults(func=_cmd_with_cache)


def _cmd_with_cache(args: argparse.Namespace) -> int:
    compile_cache.setup(args)
    return cmd_evotune(args)


def _write_json_atomic(obj, path: Path) -> None:
    with atomic_file(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)


def cmd_evotune(args: argparse.Namespace) -> int:
    """Run evotuning as asked by ``args``; 0 on success, 2 with ``error: ...`` on bad input."""
    try:
        return _run(args)
    except (ValueError, KeyError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from unirep_port import weights
    from unirep_port.fasta import read_fasta
    from unirep_port.jax_port.evotuning.train import evotune
    from unirep_port.jax_port.params import load_params, to_canonical

    out = Path(args.output)
    tuned_path, hist_path = out / "tuned.safetensors", out / "history.json"
    if not args.force and (tuned_path.exists() or hist_path.exists()):
        raise ValueError(f"{out} already holds evotune outputs; pass --force to overwrite")
    records = list(read_fasta(args.input))  # validates every record (errors name the id)
    if args.weights:
        params = load_params(args.weights)
        if args.size is not None and params.hidden != args.size:
            raise ValueError(
                f"--weights {args.weights} is a {params.hidden} model, not {args.size}"
            )
    else:
        params = load_params(args.size or 1900)
    ckpt_every = args.checkpoint_every
    tuned, history = evotune(
        [s for _, s in records],
        params,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        holdout=args.holdout,
        patience=args.patience,
        seed=args.seed,
        tbptt=args.tbptt,
        checkpoint_dir=out / "checkpoints" if ckpt_every > 0 else None,
        checkpoint_every=max(ckpt_every, 1),
        progress=not args.quiet,
    )
    out.mkdir(parents=True, exist_ok=True)
    weights.save(to_canonical(tuned), tuned_path, "canonical", force=True)
    history["input"] = os.fspath(args.input)
    history["n_records"] = len(records)
    _write_json_atomic(history, hist_path)
    if not args.quiet:
        best = history["best_epoch"]
        print(f"wrote {tuned_path} (best epoch {best}) and {hist_path}", file=sys.stderr)
    return 0
