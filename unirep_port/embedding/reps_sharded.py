"""``unirep-port reps --engine ray|local --format parquet|npz``: sharded, resumable reps.

The driver streams the FASTA once (any size; stdin and compressed files too), cuts it into
shards of ``--shard-size`` consecutive records (shard ``k`` = records ``[kS, (k+1)S)``: the
same input always gives the same shards), and hands each shard to a worker, which validates
it (errors name the record id and line), computes reps with ``jax_port.iter_reps`` and writes
``OUT/shard-k.{parquet,npz}`` atomically (:mod:`unirep_port.shards`). The driver appends each
finished shard, with its record count and checksums, to ``OUT/_manifest.jsonl``.

Re-running the same command resumes: a shard whose manifest entry matches the input records
(digest) and whose file matches its sha256 is skipped; every other shard is (re)computed.
A bad record fails its shard only: the other shards finish, and the run exits 2 naming it.
Duplicate ids are found across shards (an 8-byte hash per record is all the driver keeps) and
fail the run naming both records.

Bitwise equal to the in-process engine: a shard is computed exactly as ``iter_reps`` computes
the whole input, 1,024 records at a time, so with ``--shard-size`` a multiple of 1,024 every
batch is the same; the tests also show equality for small shards (the reps do not depend on
the batch mix on this CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from unirep_port import shards
from unirep_port.fasta import RawRecord, clean, display_name, iter_raw
from unirep_port.sizes import get_size

DEFAULT_SHARD_SIZE = 4096


def add_sharded_arguments(r: argparse.ArgumentParser) -> None:
    g = r.add_argument_group("sharded output and Ray (see README: Embedding at scale)")
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
        help="Ray cluster address (default: start a local Ray, bound to 127.0.0.1 only)",
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


def settings(args: argparse.Namespace, fmt: str) -> dict:
    """What decides a shard's bytes; a resumed run must match the one that wrote OUT."""
    weights = args.weights or "published"
    if args.weights and os.path.isfile(args.weights):
        st = os.stat(args.weights)
        weights = f"{os.path.abspath(args.weights)} ({st.st_size} bytes, mtime_ns {st.st_mtime_ns})"
    return {
        "kind": "header",
        "version": 1,
        "format": fmt,
        "shard_size": args.shard_size,
        "size": args.size,
        "weights": weights,
        "precision": getattr(args, "precision", None) or "highest",
        "strip_stop": bool(args.strip_stop),
        "batch_size": args.batch_size,
        "hidden_states": bool(getattr(args, "hidden_states", False)),
    }


def compute_shard(params, k: int, start: int, records: list[RawRecord], cfg: dict) -> dict:
    """A worker's job: validate, compute and write shard ``k``; returns its manifest entry."""
    t0 = time.perf_counter()
    try:
        clean_recs = [(r.id, clean(r, cfg["strip_stop"])) for r in records]
    except ValueError as exc:
        raise ValueError(f"shard {k} (records {start + 1}-{start + len(records)}): {exc}") from None
    from unirep_port import jax_port

    ids: list[str] = []
    parts = []
    for b_ids, lengths, *reps in jax_port.iter_reps(
        clean_recs, params, batch_size=cfg["batch_size"], precision=cfg["precision"]
    ):
        ids.extend(b_ids)
        parts.append((lengths, reps))
    lengths = np.concatenate([p[0] for p in parts])
    reps = {key: np.concatenate([p[1][i] for p in parts]) for i, key in enumerate(shards.REPS)}
    meta = {"shard": k, "start": start, "size": cfg["size"], "weights": cfg["weights"]}
    writer = hidden = None
    if cfg.get("hidden_states"):
        writer, hidden = _write_hidden(params, k, clean_recs, cfg, reps["h_avg"].shape[1])
    try:
        written = shards.write_shard(cfg["out"], k, cfg["format"], ids, lengths, reps, meta)
        if writer is not None:
            writer.commit()  # the manifest line, written after this returns, commits the pair
            written["hidden"] = hidden
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return {
        "kind": "shard",
        "shard": k,
        "start": start,
        "count": len(ids),
        "residues": int(lengths.sum()),
        "seconds": round(time.perf_counter() - t0, 3),
        **written,
    }


def _write_hidden(params, k: int, clean_recs, cfg: dict, width: int):
    """Shard ``k``'s hidden states to a finished temporary store: (writer, manifest record)."""
    from unirep_port import hidden_store
    from unirep_port.embedding import hidden_states

    rel = shards.hidden_name(k)
    dst = Path(cfg["out"]) / rel
    dst.parent.mkdir(exist_ok=True)
    with hidden_store.HiddenStoreWriter(dst, width, {"shard": k, "size": cfg["size"]}) as w:
        hidden_states.compute_into(w, clean_recs, params, cfg["size"])
        tmp = w.finish()
    try:
        rec = {"file": rel, "sha256": shards.sha256_file(tmp), "bytes": tmp.stat().st_size}
    except BaseException:
        w.abort()
        raise
    return w, rec


class LocalExecutor:
    """Shards computed one at a time in this process (``--engine local --format parquet``)."""

    workers = 1

    def __init__(self, args: argparse.Namespace, cfg: dict):
        from unirep_port import jax_port

        self.params = jax_port.load_params(args.weights or args.size)
        self.cfg = cfg
        self._done: list = []

    def submit(self, k: int, start: int, records: list[RawRecord]):
        try:
            self._done.append((k, compute_shard(self.params, k, start, records, self.cfg)))
        except ValueError as exc:
            self._done.append((k, exc))

    def in_flight(self) -> int:
        return len(self._done)

    def wait(self) -> list[tuple[int, dict | Exception]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        pass


def _prepare_output(out: Path, header: dict, force: bool) -> shards.Manifest:
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"{out} is a file; sharded output (--format parquet / --engine ray) is a directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    man = shards.Manifest.read(out)
    ours = [p for p in out.iterdir() if shards.SHARD_RE.match(p.name) or p.name == shards.MANIFEST]
    hid = out / shards.HIDDEN_DIR
    ours += [p for p in hid.iterdir() if shards.HIDDEN_RE.match(p.name)] if hid.is_dir() else []
    if force:
        for p in ours:
            p.unlink()
        man = shards.Manifest(None, {}, None)
    elif man.header is None and any(out.iterdir()):
        raise ValueError(
            f"{out} is not empty and holds no {shards.MANIFEST}; refusing to write "
            "into it (choose a new directory)"
        )
    elif man.header is not None:
        old = {"hidden_states": False, **man.header}  # written before the option existed
        diff = {k: (old.get(k), v) for k, v in header.items() if old.get(k) != v}
        if diff:
            shown = ", ".join(
                f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in diff.items())
            )
            raise ValueError(
                f"{out} was written with other settings ({shown}); pass --force to "
                "start over or choose a new directory"
            )
    shards.remove_temporaries(out)
    return man


def _chunks(path: str, size: int) -> Iterator[list[RawRecord]]:
    buf: list[RawRecord] = []
    for rec in iter_raw(path):
        buf.append(rec)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def run(args: argparse.Namespace, executor_factory) -> int:
    """Drive a sharded run; returns the exit status (0 done, 2 bad input)."""
    fmt = args.format or "parquet"
    if args.shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {args.shard_size}")
    out = Path(args.output)
    header = settings(args, fmt)
    man = _prepare_output(out, header, args.force)
    kept = [man.shards[k] for k in sorted(man.shards)]
    shards.rewrite_manifest(out, header, kept)
    cfg = {**header, "out": str(out.resolve())}
    t0 = time.perf_counter()
    hashes = array("q")  # one 8-byte hash per record id, for the duplicate check at the end
    failures: dict[int, str] = {}
    entries: dict[int, dict] = {}
    reused = 0
    n_records = n_shards = 0
    executor = None
    digests: dict[int, str] = {}

    def collect(results):
        for k, res in results:
            if isinstance(res, Exception):
                failures[k] = str(res)
            else:
                res["input_digest"] = digests.pop(k)
                shards.append_manifest(out, res)
                entries[k] = res

    parse_error = None
    try:
        try:
            for k, recs in enumerate(_chunks(args.input, args.shard_size)):
                start = n_records
                n_records += len(recs)
                n_shards = k + 1
                hashes.extend(hash(r.id) for r in recs)
                digest = shards.input_digest(recs)
                prev = man.shards.get(k)
                if prev and prev.get("input_digest") == digest and man.verified(out, k):
                    entries[k] = prev
                    reused += 1
                    continue
                if executor is None:
                    executor = executor_factory(args, cfg)
                while executor.in_flight() >= 2 * executor.workers:
                    collect(executor.wait())
                digests[k] = digest
                executor.submit(k, start, recs)
        except ValueError as exc:  # the input's structure (the reader names file and line)
            parse_error = str(exc)
        while executor is not None and executor.in_flight():
            collect(executor.wait())
    finally:
        if executor is not None:
            executor.close()
        shards.remove_temporaries(out)
    dups = _duplicates(hashes, args.shard_size, out, entries)
    if parse_error:
        print(f"error: {parse_error}", file=sys.stderr)
    for k in sorted(failures):
        print(f"error: {failures[k]}", file=sys.stderr)
    for msg in dups:
        print(f"error: {display_name(args.input)}: {msg}", file=sys.stderr)
    hid = out / shards.HIDDEN_DIR
    stale = [*out.iterdir(), *(hid.iterdir() if hid.is_dir() else [])]
    for p in [] if parse_error else stale:  # shards of an earlier, longer input
        m = shards.SHARD_RE.match(p.name) or shards.HIDDEN_RE.match(p.name)
        if m and int(m.group(1)) >= n_shards:
            p.unlink()
    dt = time.perf_counter() - t0
    done = len(entries)
    if failures or dups or parse_error:
        print(
            f"{done} of {n_shards} shards finished in {out} (kept; fix the input and re-run the "
            "same command to finish: finished shards whose records are unchanged are reused)",
            file=sys.stderr,
        )
        return 2
    shards.append_manifest(out, {"kind": "complete", "records": n_records, "shards": n_shards})
    residues = sum(e["residues"] for e in entries.values())
    print(
        f"wrote {n_records} sequences ({residues} residues) in {n_shards} shards to {out} "
        f"({reused} reused from an earlier run) in {dt:.1f} s"
    )
    return 0


def _duplicates(hashes: array, shard_size: int, out: Path, entries: dict) -> list[str]:
    """Messages naming each repeated id (hash match confirmed from the written shards)."""
    h = np.frombuffer(hashes, dtype=np.int64) if len(hashes) else np.zeros(0, np.int64)
    order = np.argsort(h, kind="stable")
    same = np.nonzero(h[order][1:] == h[order][:-1])[0]
    msgs = []
    for i in same[:20]:
        a, b = int(order[i]), int(order[i + 1])
        ida, idb = _id_at(a, shard_size, out, entries), _id_at(b, shard_size, out, entries)
        if ida is not None and idb is not None and ida != idb:
            continue  # a 64-bit hash collision, not a duplicate
        name = repr(ida if ida is not None else idb)
        msgs.append(
            f"duplicate id {name}: record #{b + 1} (shard {b // shard_size}) repeats record "
            f"#{a + 1} (shard {a // shard_size}); ids must be unique"
        )
    return msgs


def _id_at(i: int, shard_size: int, out: Path, entries: dict) -> str | None:
    entry = entries.get(i // shard_size)
    if entry is None:
        return None
    p = out / entry["file"]
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            return str(z["ids"][i % shard_size])
    import pyarrow.parquet as pq

    return pq.read_table(p, columns=["id"]).column("id")[i % shard_size].as_py()


def hidden_precision_error() -> str:
    return (
        "error: --hidden-states computes at --precision highest (jax_port.get_hidden_states); "
        "drop --precision fast or --hidden-states"
    )


def cmd_reps_sharded(args: argparse.Namespace) -> int:
    """The CLI entry for ``--engine ray`` or ``--format parquet``."""
    get_size(args.size)
    if args.impl != "jax":
        print("error: sharded output runs the JAX port only (--impl jax)", file=sys.stderr)
        return 2
    if args.hidden_states:
        if args.precision != "highest":
            print(hidden_precision_error(), file=sys.stderr)
            return 2
        from unirep_port import hidden_store

        try:
            hidden_store.require()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.engine == "ray":
        if args.format is None:
            args.format = "parquet"
        if not args.address:
            # Read by Ray when it is imported: "0" makes a local Ray's node address the loopback
            # one, so its services bind there (ray_engine.start_local_ray checks that it held).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            from unirep_port.embedding.ray_engine import RayExecutor
        except ImportError as exc:
            print(
                f"error: --engine ray needs Ray: pip install 'unirep-port[distributed]' ({exc})",
                file=sys.stderr,
            )
            return 2
        factory = RayExecutor
    else:
        if args.device:
            os.environ["JAX_PLATFORMS"] = {"cpu": "cpu", "gpu": "cuda"}[args.device]
        factory = LocalExecutor
    try:
        return run(args, factory)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
