"""Per-residue hidden states (``unirep-port reps --hidden-states``) in a chunked HDF5 store.

Why HDF5 (h5py) rather than zarr: a store here must be *one file*, so that it can be written to
a temporary name and renamed into place atomically, and checksummed (sha256) in the manifest
like a reps shard; zarr's default layout is a directory of many chunk files (no atomic rename,
no single checksum), and its zip store gives up concurrent-safe writes for little gain. h5py
installs from a binary wheel on Python 3.11 here (it is already a dependency of the TF reference
extra), reads anywhere HDF5 does, and brings per-chunk gzip, shuffle and Fletcher-32 checksums
with no extra plugin, so a damaged chunk is an error on read even without a manifest.

Layout of one store (``OUT/_hidden/shard-k.h5`` for sharded output; ``NAME.hidden.h5`` beside a
single ``NAME.npz``)::

    /ids                (n,) utf-8 strings, input order
    /length             (n,) int32 residues
    /states/<key>       float32 (L+1, H): start token first, as jax_port.get_hidden_states
                        returns it; attrs "id" (the record id) and "length" (L); chunked by
                        up to 256 positions x H, shuffle + gzip 4 + fletcher32

``<key>`` is the record id with ``%`` and ``/`` percent-escaped (``/`` separates HDF5 groups),
and ``.`` escaped as a whole name. Root attrs: ``hidden``, ``size``, ``count``, ``version``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CHUNK_POSITIONS = 256
SUFFIX = ".h5"


def require() -> None:
    """Raise ``ValueError`` (with the install command) now if h5py is missing."""
    _h5py()


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - partial installs
        raise ValueError(
            f"--hidden-states needs h5py: pip install 'unirep-port[distributed]' ({exc})"
        ) from None
    return h5py


def key_of(rid: str) -> str:
    """The dataset name of record ``rid`` under ``/states``."""
    k = rid.replace("%", "%25").replace("/", "%2F")
    return "%2E" if k == "." else k


class HiddenStoreWriter:
    """Write one store to ``.NAME.tmp-PID`` beside ``dst``; ``commit()`` renames it into place.

    ``abort()`` (or an exception inside a ``with`` block) removes the temporary file, so nothing
    half-written is ever left at ``dst``.
    """

    def __init__(self, dst: str | os.PathLike, hidden: int, attrs: dict | None = None):
        h5py = _h5py()
        self.dst = Path(dst)
        self.hidden = hidden
        self.tmp = self.dst.with_name(f".{self.dst.name}.tmp-{os.getpid()}")
        self._ids: list[str] = []
        self._lengths: list[int] = []
        self._f = h5py.File(self.tmp, "w", track_order=True)
        self._f.attrs.update({"version": 1, "hidden": hidden, **(attrs or {})})
        self._states = self._f.create_group("states", track_order=True)

    def append(self, rid: str, states: np.ndarray) -> None:
        a = np.asarray(states)
        if a.dtype != np.float32 or a.ndim != 2 or a.shape[1] != self.hidden or a.shape[0] < 1:
            raise ValueError(
                f"hidden states of {rid!r}: expected float32 (L+1, {self.hidden}), "
                f"got {a.dtype} {a.shape}"
            )
        key = key_of(rid)
        if key in self._states:
            raise ValueError(f"hidden states of {rid!r}: id written twice to {self.dst}")
        ds = self._states.create_dataset(
            key,
            data=a,
            chunks=(min(a.shape[0], CHUNK_POSITIONS), self.hidden),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
            fletcher32=True,
        )
        ds.attrs["id"] = rid
        ds.attrs["length"] = a.shape[0] - 1
        self._ids.append(rid)
        self._lengths.append(a.shape[0] - 1)

    def finish(self) -> Path:
        """Write the index and close the temporary file (not yet in place); returns its path."""
        h5py = _h5py()
        self._f.create_dataset("ids", data=self._ids, dtype=h5py.string_dtype("utf-8"))
        self._f.create_dataset("length", data=np.asarray(self._lengths, np.int32))
        self._f.attrs["count"] = len(self._ids)
        self._f.close()
        return self.tmp

    def commit(self) -> Path:
        """Move the finished store into place (call :meth:`finish` first)."""
        os.replace(self.tmp, self.dst)
        return self.dst

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> HiddenStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def read_store(path: str | os.PathLike, ids=None) -> dict[str, np.ndarray]:
    """``{id: float32 (L+1, H)}`` from one store, in its order (or only ``ids``, which must be
    in it). A damaged file or chunk raises ``ValueError`` naming the file (and the id)."""
    h5py = _h5py()
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable hidden-states store ({exc})") from None
    with f:
        want = _ids_of(f, path) if ids is None else list(ids)
        out = {}
        for rid in want:
            key = key_of(rid)
            try:
                ds = f["states"][key]
                a = ds[()]
                length = int(ds.attrs["length"])
            except KeyError:
                raise KeyError(f"{path}: no hidden states for id {rid!r}") from None
            except OSError as exc:  # a Fletcher-32 mismatch or unreadable chunk
                raise ValueError(f"{path}: hidden states of {rid!r} are damaged ({exc})") from None
            if a.shape[0] != length + 1:
                raise ValueError(
                    f"{path}: hidden states of {rid!r} have {a.shape[0]} positions, "
                    f"expected length + 1 = {length + 1}"
                )
            out[rid] = a
        return out


def store_ids(path: str | os.PathLike) -> list[str]:
    """The ids a store holds, in order."""
    h5py = _h5py()
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return _ids_of(f, path)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable hidden-states store ({exc})") from None


def _ids_of(f, path: Path) -> list[str]:
    try:
        return [s.decode() if isinstance(s, bytes) else s for s in f["ids"][()]]
    except (KeyError, OSError) as exc:
        raise ValueError(f"{path}: hidden-states store has no readable id index ({exc})") from None


def npz_store_path(npz: str | os.PathLike) -> Path:
    """The store written beside a single ``.npz``: ``NAME.npz`` -> ``NAME.hidden.h5``."""
    p = Path(npz)
    stem = p.name[: -len(".npz")] if p.name.endswith(".npz") else p.name
    return p.with_name(f"{stem}.hidden{SUFFIX}")
