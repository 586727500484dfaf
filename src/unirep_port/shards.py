"""Sharded reps output: one file per shard, a manifest, atomic writes, one-call loading.

Layout of an output directory ``OUT/``::

    OUT/shard-000000.parquet   records [0, S) of the input, in input order
    OUT/shard-000001.parquet   records [S, 2S) ...
    OUT/_manifest.jsonl        one JSON object a line (see below)
    OUT/_hidden/shard-000000.h5  per-residue hidden states of shard 0 (``--hidden-states`` only;
                               :mod:`unirep_port.hidden_store`)

A parquet shard has the columns ``id`` (string), ``length`` (int32, residues), ``h_avg``,
``h_final``, ``c_final`` (fixed-size lists of float32, width = the model's hidden size). An
``.npz`` shard holds the arrays ``ids``, ``length``, ``h_avg``, ``h_final``, ``c_final``.
Names starting with ``_`` or ``.`` are skipped by pyarrow/pandas dataset discovery, so
``pandas.read_parquet(OUT)`` reads exactly the shards.

The manifest's first line is the run's settings (``{"kind": "header", ...}``); every finished
shard appends ``{"kind": "shard", "shard": k, "start": ..., "count": ..., "file": ...,
"sha256": ..., "bytes": ..., "input_digest": ...}`` (plus ``"hidden": {"file", "sha256",
"bytes"}`` with ``--hidden-states``); a run that finished every shard with no
error appends ``{"kind": "complete", "records": N, "shards": n}``. A line cut short by a
killed driver is ignored. Each shard file is written to a dot-prefixed temporary name and
renamed into place, so a shard file that exists is whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "_manifest.jsonl"
REPS = ("h_avg", "h_final", "c_final")
SHARD_RE = re.compile(r"^shard-(\d+)\.(parquet|npz)$")
TMP_RE = re.compile(r"^\.shard-\d+\.(parquet|npz|h5)\.tmp-")
HIDDEN_DIR = "_hidden"  # "_": skipped by pyarrow/pandas discovery of the parquet shards
HIDDEN_RE = re.compile(r"^shard-(\d+)\.h5$")


def shard_name(k: int, fmt: str) -> str:
    return f"shard-{k:06d}.{fmt}"


def hidden_name(k: int) -> str:
    """Shard ``k``'s hidden-states store, relative to the output directory."""
    return f"{HIDDEN_DIR}/shard-{k:06d}.h5"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def input_digest(records) -> str:
    """Digest of a shard's raw input (ids and sequences in order): did the input change?"""
    h = hashlib.blake2b(digest_size=16)
    for rec in records:
        h.update(rec[0].encode())
        h.update(b"\0")
        h.update(rec[1].encode())
        h.update(b"\n")
    return h.hexdigest()


def write_shard(
    out_dir: str | os.PathLike,
    k: int,
    fmt: str,
    ids: list[str],
    lengths: np.ndarray,
    reps: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> dict:
    """Write shard ``k`` atomically; returns ``{"file", "sha256", "bytes"}``.

    ``reps`` maps each of h_avg/h_final/c_final to float32 (n, H); ``lengths`` is (n,).
    """
    out_dir = Path(out_dir)
    name = shard_name(k, fmt)
    tmp = out_dir / f".{name}.tmp-{os.getpid()}"
    n = len(ids)
    for key in REPS:
        a = reps[key]
        if a.dtype != np.float32 or a.ndim != 2 or a.shape[0] != n:
            raise ValueError(
                f"shard {k}: {key} must be float32 (n={n}, H), got {a.dtype} {a.shape}"
            )
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            cols = {"id": pa.array(ids, pa.string()), "length": pa.array(lengths, pa.int32())}
            for key in REPS:
                a = np.ascontiguousarray(reps[key])
                cols[key] = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])
            table = pa.table(cols).replace_schema_metadata(
                {f"unirep_port.{k_}": str(v) for k_, v in (metadata or {}).items()}
            )
            pq.write_table(table, tmp)
        elif fmt == "npz":
            with open(tmp, "wb") as fh:
                np.savez(
                    fh, ids=np.array(ids, dtype=str), length=np.asarray(lengths, np.int32), **reps
                )
        else:
            raise ValueError(f"unknown shard format {fmt!r} (parquet or npz)")
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, out_dir / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"file": name, "sha256": digest, "bytes": size}


def remove_temporaries(out_dir: str | os.PathLike) -> list[str]:
    """Delete shard files left half-written by a killed worker or driver; returns their names."""
    gone = []
    hidden = Path(out_dir) / HIDDEN_DIR
    for p in [*Path(out_dir).iterdir(), *(hidden.iterdir() if hidden.is_dir() else [])]:
        if TMP_RE.match(p.name):
            p.unlink(missing_ok=True)
            gone.append(p.name)
    return gone


@dataclass
class Manifest:
    """What ``_manifest.jsonl`` says: the run's settings, finished shards, completeness."""

    header: dict | None
    shards: dict[int, dict]
    complete: dict | None

    @classmethod
    def read(cls, out_dir: str | os.PathLike) -> Manifest:
        path = Path(out_dir) / MANIFEST
        header, shards, complete = None, {}, None
        if not path.exists():
            return cls(None, {}, None)
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed driver
                kind = entry.get("kind")
                if kind == "header":
                    header, shards, complete = entry, {}, None
                elif kind == "shard":
                    shards[int(entry["shard"])] = entry
                    complete = None
                elif kind == "complete":
                    complete = entry
        return cls(header, shards, complete)

    def verified(self, out_dir: str | os.PathLike, k: int) -> dict | None:
        """Shard ``k``'s entry if its file (and hidden-states store, if it has one) exists with
        the recorded size and sha256, else None."""
        entry = self.shards.get(k)
        if entry is None:
            return None
        if not _file_ok(Path(out_dir), entry):
            return None
        if "hidden" in entry and not _file_ok(Path(out_dir), entry["hidden"]):
            return None
        return entry


def _file_ok(out_dir: Path, rec: dict) -> bool:
    p = out_dir / rec["file"]
    try:
        return p.stat().st_size == rec["bytes"] and sha256_file(p) == rec["sha256"]
    except FileNotFoundError:
        return False


def rewrite_manifest(out_dir: str | os.PathLike, header: dict, shards: list[dict]) -> None:
    """Start a run's manifest: its settings plus the shards kept from before (atomic)."""
    path = Path(out_dir) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        for entry in [header, *shards]:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_manifest(out_dir: str | os.PathLike, entry: dict) -> None:
    """Append one line and fsync it (a killed driver loses at most the line being written)."""
    with open(Path(out_dir) / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _read_manifest(path: Path, allow_incomplete: bool) -> tuple[Manifest, int]:
    """The manifest of a sharded output and how many shards to read (checks it is complete)."""
    man = Manifest.read(path)
    if man.header is None:
        raise ValueError(f"{path}: no {MANIFEST}; not a sharded reps output")
    if man.complete is None and not allow_incomplete:
        raise ValueError(
            f"{path}: the run is not complete ({len(man.shards)} shard(s) finished); re-run the "
            "same command to finish it, or pass allow_incomplete=True"
        )
    n_shards = man.complete["shards"] if man.complete else max(man.shards, default=-1) + 1
    return man, n_shards


def load_reps(path: str | os.PathLike, *, allow_incomplete: bool = False) -> dict[str, np.ndarray]:
    """Load ``unirep-port reps`` output into numpy, in input order: one call.

    Args:
        path: a single ``.npz`` written by the in-process engine, or a sharded output directory
            (parquet or npz shards with ``_manifest.jsonl``).
        allow_incomplete: load the finished shards of an unfinished run instead of raising.

    Returns:
        ``{"ids": (n,) str, "length": (n,) int32 or absent for a single .npz, "h_avg",
        "h_final", "c_final": (n, H) float32}``. Every shard's sha256 is checked against the
        manifest; a mismatch raises ``ValueError`` naming the file.
    """
    path = Path(path)
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    man, n_shards = _read_manifest(path, allow_incomplete)
    parts: list[dict[str, np.ndarray]] = []
    for k in range(n_shards):
        entry = man.verified(path, k)
        if entry is None:
            if k in man.shards:
                raise ValueError(f"{path / man.shards[k]['file']}: missing or checksum mismatch")
            if allow_incomplete:
                continue
            raise ValueError(f"{path}: shard {k} is not in the manifest")
        parts.append(_read_shard(path / entry["file"]))
    if not parts:
        raise ValueError(f"{path}: no finished shards")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _read_shard(p: Path) -> dict[str, np.ndarray]:
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    import pyarrow.parquet as pq

    t = pq.read_table(p)
    out = {"ids": np.array(t.column("id").to_pylist(), dtype=str)}
    out["length"] = t.column("length").to_numpy()
    for key in REPS:
        col = t.column(key).combine_chunks()
        out[key] = col.values.to_numpy().reshape(len(col), col.type.list_size)
    return out


def load_hidden_states(
    path: str | os.PathLike, ids=None, *, allow_incomplete: bool = False
) -> dict[str, np.ndarray]:
    """Load the per-residue hidden states of a ``reps --hidden-states`` run: one call.

    Args:
        path: a sharded output directory, a single ``NAME.npz`` (its ``NAME.hidden.h5`` is
            read) or a store ``.h5`` itself.
        ids: only these record ids (in this order); default every record, in input order.
        allow_incomplete: read the finished shards of an unfinished run instead of raising.

    Returns:
        ``{id: float32 (L+1, H)}``, position 0 the start token: bitwise what
        ``jax_port.get_hidden_states`` returns for the sequence. Each store read is checked
        against the manifest's sha256 (a store beside an ``.npz``: against that file's sha256);
        a mismatch raises ``ValueError`` naming the file, an unknown id ``KeyError`` naming it.
    """
    from unirep_port import hidden_store

    path = Path(path)
    if path.is_file() and path.suffix == ".h5":
        return hidden_store.read_store(path, ids)
    if path.is_file():
        store = hidden_store.npz_store_path(path)
        if not store.is_file():
            raise ValueError(f"{path}: no {store.name} beside it (written without --hidden-states)")
        want = store_npz_sha256(store)
        if want != sha256_file(path):
            raise ValueError(
                f"{store}: does not belong to {path} (sha256 differs: one of the two was "
                "rewritten or damaged); re-run the command with --hidden-states"
            )
        return hidden_store.read_store(store, ids)
    man, n_shards = _read_manifest(path, allow_incomplete)
    if not man.header.get("hidden_states"):
        raise ValueError(f"{path}: written without --hidden-states; no hidden states stored")
    wanted = None if ids is None else list(ids)
    left = None if wanted is None else set(wanted)
    found: dict[str, np.ndarray] = {}
    for k in range(n_shards):
        entry = man.shards.get(k)
        if entry is None:
            if allow_incomplete:
                continue
            raise ValueError(f"{path}: shard {k} is not in the manifest")
        rec = entry.get("hidden")
        if rec is None:
            raise ValueError(f"{path}: shard {k} has no hidden-states store in the manifest")
        p = path / rec["file"]
        if left is not None:
            if not left:
                break
            here = [i for i in hidden_store.store_ids(p) if i in left] if p.is_file() else None
            if here == []:
                continue
        if not _file_ok(path, rec):
            raise ValueError(f"{p}: missing or checksum mismatch (shard {k})")
        part = hidden_store.read_store(p, None if left is None else here)
        found.update(part)
        if left is not None:
            left.difference_update(part)
    if wanted is None:
        return found
    if left:
        shown = ", ".join(repr(i) for i in sorted(left)[:5])
        raise KeyError(f"{path}: no hidden states for {len(left)} id(s): {shown}")
    return {i: found[i] for i in wanted}


def store_npz_sha256(store: str | os.PathLike) -> str | None:
    """The sha256 of the ``.npz`` a single-file store was written with (root attr)."""
    from unirep_port import hidden_store

    h5py = hidden_store._h5py()
    try:
        with h5py.File(store, "r") as f:
            v = f.attrs.get("npz_sha256")
    except OSError as exc:
        raise ValueError(f"{store}: not a readable hidden-states store ({exc})") from None
    return None if v is None else str(v)
