"""``unirep-port reps --engine ray|local --format parquet|npz``: the sharded run's options.

The arguments are defined here and turned into the library's plain records
(``reps_sharded.ShardOptions``, ``ray_engine.RayOptions``); the library never sees argparse.
"""

from __future__ import annotations

import argparse
import os
import sys

from unirep_port.cli.device import use_platform
from unirep_port.embedding import reps_sharded
from unirep_port.embedding.local_cluster import is_loopback_address
from unirep_port.embedding.reps_sharded import DEFAULT_SHARD_SIZE, ShardOptions
from unirep_port.sizes import get_size

# Default of --lost-worker-timeout: long enough for Ray to declare a lost node dead and start
# its actor on another node (constructor and imports included), short next to a batch job's
# wall time.
DEFAULT_LOST_TIMEOUT_S = 120.0


def add_sharded_arguments(r: argparse.ArgumentParser) -> None:
    g = r.add_argument_group("sharded output and Ray (see docs/scale-out.md)")
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: an actor pool on Ray (pip install "
        "'unirep-port[distributed]')",
    )
    g.add_argument(
        "--format",
        choices=["npz", "parquet"],
        help="npz (default for --engine local: one file) or parquet (default for ray: a "
        "directory of shards + _manifest.jsonl)",
    )
    g.add_argument(
        "--address",
        help="Ray cluster address (default: start a local Ray, bound to 127.0.0.1 only); -o "
        "must then be on a filesystem every node shares (checked at start)",
    )
    g.add_argument(
        "--ray-dashboard",
        action="store_true",
        help="with a local Ray: also start its dashboard and job API (on 127.0.0.1; off by "
        "default: they run code for whoever reaches them)",
    )
    g.add_argument(
        "--workers", type=int, help="Ray actors (default: local CPUs, or the cluster's GPUs/CPUs)"
    )
    g.add_argument(
        "--lost-worker-timeout",
        type=float,
        default=DEFAULT_LOST_TIMEOUT_S,
        metavar="SECONDS",
        help="with --engine ray: stop (exit 3, resumable) once no worker has answered for this "
        f"long, e.g. after losing every node with capacity (default {DEFAULT_LOST_TIMEOUT_S:g})",
    )
    g.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help=f"records per shard (default {DEFAULT_SHARD_SIZE})",
    )
    g.add_argument(
        "--hidden-states",
        action="store_true",
        help="also write per-residue hidden states, float32 (L+1, H) per record, to HDF5: "
        "OUT/_hidden/shard-k.h5, or NAME.hidden.h5 beside NAME.npz (--impl jax)",
    )


def shard_options(args: argparse.Namespace) -> ShardOptions:
    return ShardOptions(
        input=args.input,
        output=args.output,
        size=args.size,
        weights=args.weights,
        fmt=args.format or "parquet",
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        precision=args.precision or "highest",
        strip_stop=bool(args.strip_stop),
        hidden_states=bool(args.hidden_states),
        force=bool(args.force),
    )


def _ray_factory(args: argparse.Namespace):
    """The Ray executor's factory, or None (message printed) when Ray is not installed."""
    if not args.address or is_loopback_address(args.address):
        # Read by Ray when it is imported: "0" makes a local Ray's node address the loopback
        # one, so its services bind there (ray_engine.start_local_ray checks that it held), and
        # keeps a loopback --address as it is (else Ray swaps in this machine's address, where
        # a loopback-only cluster does not listen).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from unirep_port.embedding import ray_engine
    except ImportError as exc:
        print(
            f"error: --engine ray needs Ray: pip install 'unirep-port[distributed]' ({exc})",
            file=sys.stderr,
        )
        return None
    opts = ray_engine.RayOptions(
        address=args.address,
        workers=args.workers,
        gpu=args.device == "gpu",
        weights=args.weights,
        size=args.size,
        dashboard=args.ray_dashboard,
        lost_timeout_s=args.lost_worker_timeout,
    )
    return lambda cfg: ray_engine.RayExecutor(opts, cfg)


def _check(args: argparse.Namespace) -> str | None:
    """The first reason these options cannot run, as a message, or None."""
    if args.impl != "jax":
        return "sharded output runs the JAX port only (--impl jax)"
    if args.workers is not None and args.workers < 1:
        return f"--workers must be >= 1, got {args.workers}"
    if args.lost_worker_timeout <= 0:
        return f"--lost-worker-timeout must be > 0, got {args.lost_worker_timeout:g}"
    if args.hidden_states:
        if args.precision != "highest":
            return reps_sharded.hidden_precision_error().removeprefix("error: ")
        from unirep_port import hidden_store

        try:
            hidden_store.require()
        except ValueError as exc:
            return str(exc)
    return None


def cmd_reps_sharded(args: argparse.Namespace) -> int:
    """The CLI entry for ``--engine ray`` or ``--format parquet``."""
    get_size(args.size)
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.engine == "ray":
        factory = _ray_factory(args)
        if factory is None:
            return 2
    else:
        if args.device:
            use_platform(args.device)
        weights = args.weights or args.size
        factory = lambda cfg: reps_sharded.LocalExecutor(weights, cfg)  # noqa: E731
    try:
        return reps_sharded.run(shard_options(args), factory)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
