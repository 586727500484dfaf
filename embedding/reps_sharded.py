"""Sharded, resumable reps (``unirep-port reps --engine ray|local --format parquet|npz``).

The driver streams the FASTA once (any size; stdin and compressed files too), cuts it into
shards of ``shard_size`` consecutive records (shard ``k`` = records ``[kS, (k+1)S)``: the
same input always gives the same shards), and hands each shard to an executor's worker, which
validates it (errors name the record id and line), computes reps with ``jax_port.iter_reps``
and writes ``OUT/shard-k.{parquet,npz}`` atomically (:mod:`unirep_port.shards`). The driver
appends each finished shard, with its record count and checksums, to ``OUT/_manifest.jsonl``.

Re-running the same command resumes: a shard whose manifest entry matches the input records
(digest) and whose file matches its sha256 is skipped; every other shard is (re)computed.
A bad record fails its shard only: the other shards finish, and the run exits 2 naming it.
Duplicate ids are found across shards (an 8-byte hash per record is all the driver keeps) and
fail the run naming both records. An executor that loses every worker raises
:class:`WorkersLost`: the finished shards stay, the run exits 3 and a re-run resumes.

Bitwise equal to the in-process engine: a shard is computed exactly as ``iter_reps`` computes
the whole input, 1,024 records at a time, so with a shard size that is a multiple of 1,024
every batch is the same; the tests also show equality for small shards (the reps do not depend
on the batch mix on this CPU).

This is a library: it takes a :class:`ShardOptions` record and an executor factory; the CLI
(``unirep_port.cli.sharded``) builds both. The Ray executor (``ray_engine``) imports this
module, never the other way round.
"""

from __future__ import annotations

import os
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from unirep_port import shards
from unirep_port.fasta import RawRecord, clean, display_name, iter_raw

DEFAULT_SHARD_SIZE = 4096
EXIT_BAD_INPUT = 2
EXIT_WORKERS_LOST = 3


@dataclass(frozen=True)
class ShardOptions:
    """One sharded run: where from and to, and everything that decides a shard's bytes.

    ``weights`` is a weights file/folder, or None for the published ``size`` model.
    ``fmt`` is ``"parquet"`` or ``"npz"``. ``force`` clears an output directory written with
    other settings instead of refusing it.
    """

    input: str
    output: str
    size: int = 1900
    weights: str | None = None
    fmt: str = "parquet"
    shard_size: int = DEFAULT_SHARD_SIZE
    batch_size: int = 256
    precision: str = "highest"
    strip_stop: bool = False
    hidden_states: bool = False
    force: bool = False


class WorkersLost(RuntimeError):
    """The executor has no worker left to run the remaining shards (a re-run resumes).

    ``shards`` are the shards it was given and did not finish.
    """

    def __init__(self, message: str, shards: list[int]):
        super().__init__(message)
        self.shards = shards


class Executor(Protocol):
    workers: int

    def submit(self, k: int, start: int, records: list[RawRecord]) -> None: ...
    def in_flight(self) -> int: ...
    def wait(self) -> list[tuple[int, dict | Exception]]: ...
    def close(self) -> None: ...


def settings(opts: ShardOptions) -> dict:
    """What decides a shard's bytes; a resumed run must match the one that wrote OUT."""
    weights = opts.weights or "published"
    if opts.weights and os.path.isfile(opts.weights):
        st = os.stat(opts.weights)
        weights = f"{os.path.abspath(opts.weights)} ({st.st_size} bytes, mtime_ns {st.st_mtime_ns})"
    return {
        "kind": "header",
        "version": 1,
        "format": opts.fmt,
        "shard_size": opts.shard_size,
        "size": opts.size,
        "weights": weights,
        "precision": opts.precision,
        "strip_stop": bool(opts.strip_stop),
        "batch_size": opts.batch_size,
        "hidden_states": bool(opts.hidden_states),
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
    """Shards computed one at a time in this process (``--engine local --format parquet``).

    ``weights`` is what ``jax_port.load_params`` takes: a weights path or a model size.
    """

    workers = 1

    def __init__(self, weights: str | int, cfg: dict):
        from unirep_port import jax_port

        self.params = jax_port.load_params(weights)
        self.cfg = cfg
        self._done: list = []

    def submit(self, k: int, start: int, records: list[RawRecord]) -> None:
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


@dataclass
class _Tally:
    """What a run has seen and finished so far (the driver's only state)."""

    out: Path
    man: shards.Manifest
    entries: dict[int, dict] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    hashes: array = field(default_factory=lambda: array("q"))  # 8 bytes a record id
    n_records: int = 0
    n_shards: int = 0
    reused: int = 0
    parse_error: str | None = None
    lost: WorkersLost | None = None

    def read(self, k: int, recs: list[RawRecord]) -> bool:
        """Count shard ``k``'s records; True if an earlier run's file for them is reusable."""
        self.n_records += len(recs)
        self.n_shards = k + 1
        self.hashes.extend(hash(r.id) for r in recs)
        digest = shards.input_digest(recs)
        prev = self.man.shards.get(k)
        if prev and prev.get("input_digest") == digest and self.man.verified(self.out, k):
            self.entries[k] = prev
            self.reused += 1
            return True
        self.digests[k] = digest
        return False

    def collect(self, results: list[tuple[int, dict | Exception]]) -> None:
        for k, res in results:
            if isinstance(res, Exception):
                self.failures[k] = str(res)
            else:
                res["input_digest"] = self.digests.pop(k)
                shards.append_manifest(self.out, res)
                self.entries[k] = res

    @property
    def read_all(self) -> bool:
        return self.parse_error is None and self.lost is None


class _LazyExecutor:
    """The executor, started only when a shard needs computing (a full resume starts none)."""

    def __init__(self, factory: Callable[[dict], Executor], cfg: dict):
        self.factory, self.cfg, self.executor = factory, cfg, None

    def get(self) -> Executor:
        if self.executor is None:
            self.executor = self.factory(self.cfg)
        return self.executor

    def drain(self, tally: _Tally) -> None:
        while self.executor is not None and self.executor.in_flight():
            tally.collect(self.executor.wait())

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


def _feed(opts: ShardOptions, tally: _Tally, lazy: _LazyExecutor) -> None:
    """Read the input shard by shard and keep the executor at most two shards a worker ahead."""
    chunks = enumerate(_chunks(opts.input, opts.shard_size))
    while True:
        try:
            k, recs = next(chunks)
        except StopIteration:
            break
        except ValueError as exc:  # the input's structure (the reader names file and line)
            tally.parse_error = str(exc)
            break
        start = tally.n_records
        if tally.read(k, recs):
            continue
        executor = lazy.get()
        while executor.in_flight() >= 2 * executor.workers:
            tally.collect(executor.wait())
        executor.submit(k, start, recs)


def run(opts: ShardOptions, executor_factory: Callable[[dict], Executor]) -> int:
    """Drive a sharded run; returns the exit status (0 done, 2 bad input, 3 workers lost).

    ``executor_factory(cfg)`` starts the executor (:class:`LocalExecutor`, the Ray one);
    ``cfg`` is the run's settings plus ``"out"``, the output directory's absolute path.
    """
    if opts.shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {opts.shard_size}")
    out = Path(opts.output)
    header = settings(opts)
    man = _prepare_output(out, header, opts.force)
    shards.rewrite_manifest(out, header, [man.shards[k] for k in sorted(man.shards)])
    tally = _Tally(out, man)
    lazy = _LazyExecutor(executor_factory, {**header, "out": str(out.resolve())})
    t0 = time.perf_counter()
    try:
        try:
            _feed(opts, tally, lazy)
            lazy.drain(tally)
        except WorkersLost as exc:
            tally.lost = exc
    finally:
        lazy.close()
        shards.remove_temporaries(out)
    return _finish(opts, tally, time.perf_counter() - t0)


def _finish(opts: ShardOptions, tally: _Tally, seconds: float) -> int:
    """Report the run's errors or its summary; mark the manifest complete when all is done."""
    out = tally.out
    dups = _duplicates(tally.hashes, opts.shard_size, out, tally.entries)
    errors = [tally.parse_error] if tally.parse_error else []
    errors += [tally.failures[k] for k in sorted(tally.failures)]
    errors += [f"{display_name(opts.input)}: {msg}" for msg in dups]
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)
    if tally.read_all:
        _remove_stale(out, tally.n_shards)
    done = len(tally.entries)
    if tally.lost is not None:
        print(f"error: {tally.lost}", file=sys.stderr)
        print(
            f"{done} of the {tally.n_shards} shards read so far finished in {out} (kept); not "
            f"done: {_not_done(tally)}. Re-run the same command to resume once the cluster has "
            "workers again: finished shards are reused",
            file=sys.stderr,
        )
        return EXIT_WORKERS_LOST
    if errors:
        print(
            f"{done} of {tally.n_shards} shards finished in {out} (kept; fix the input and "
            "re-run the same command to finish: finished shards whose records are unchanged "
            "are reused)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    shards.append_manifest(
        out, {"kind": "complete", "records": tally.n_records, "shards": tally.n_shards}
    )
    residues = sum(e["residues"] for e in tally.entries.values())
    print(
        f"wrote {tally.n_records} sequences ({residues} residues) in {tally.n_shards} shards "
        f"to {out} ({tally.reused} reused from an earlier run) in {seconds:.1f} s"
    )
    return 0


def _not_done(tally: _Tally) -> str:
    missing = [k for k in range(tally.n_shards) if k not in tally.entries]
    shown = ", ".join(map(str, missing[:50])) + (", ..." if len(missing) > 50 else "")
    return f"shards {shown} and every shard after {tally.n_shards - 1} (not read yet)"


def _remove_stale(out: Path, n_shards: int) -> None:
    """Delete shard files of an earlier, longer input (only once the whole input was read)."""
    hid = out / shards.HIDDEN_DIR
    for p in [*out.iterdir(), *(hid.iterdir() if hid.is_dir() else [])]:
        m = shards.SHARD_RE.match(p.name) or shards.HIDDEN_RE.match(p.name)
        if m and int(m.group(1)) >= n_shards:
            p.unlink()


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
