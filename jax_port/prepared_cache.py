"""The host-prepared weights of a fresh process, read back from disk instead of recomputed.

:func:`model.prepare_host` (weight norm in float64, per-token tables, transposes) is the
largest single cost of a short ``reps`` run after the imports (profile in
``benchmarks/results/history/reps-e2e-issue18.json``). Its result depends only on the weights and
the code, so where JAX's persistent compilation cache is on (:mod:`jax_port.compile_cache`), the
default cell's result is kept there as ``unirep-port-prepared-<key>.bin``. The key hashes the
weights (their arrays, or the verified SHA-256 of the published file they were read from:
:func:`params.content_digest`), the source files that compute and store the result
(``cell.py``, ``model.py``, this module) and the numpy version.

The file is one flat block: a header naming each leaf's shape, dtype and offset, a CRC-32 of the
data, then the leaves at 64-byte boundaries. It is read with one ``readinto`` into a 64-byte
aligned buffer, so ``jax.device_put`` on the CPU wraps the leaves without copying them (what a copy
and an ``.npz`` read cost a one-sequence run: ``docs/speed.md``, "A one-sequence run").
A file whose header, size, CRC, tree, shapes or dtypes do not match is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import jax
import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.jax_port import cell, compile_cache
from unirep_port.jax_port.params import content_digest

_CODE = [Path(cell.__file__), Path(__file__).with_name("model.py"), Path(__file__)]
MAGIC = b"unirep-port-prepared/1\n"
ALIGN = 64  # XLA:CPU wraps a host buffer aligned to this without a copy


def key(params) -> str:
    """Hash of the weights, the preparing code and the numpy version.

    The weights enter as :func:`params.content_digest` where they have one (the published
    weights: the SHA-256 of their verified file), else as a hash of every array.
    """
    h = hashlib.sha256()  # SHA-256 over blake2b: CPUs with SHA-NI hash it faster
    for p in _CODE:
        h.update(p.read_bytes())
    h.update(np.__version__.encode())
    digest = content_digest(params)
    if digest is not None:
        h.update(digest.encode())
        return h.hexdigest()
    for leaf in jax.tree_util.tree_leaves(params):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def path_for(params) -> Path | None:
    """Where the prepared weights of ``params`` live, or None when the compile cache is off."""
    d = compile_cache.directory()
    return d / f"unirep-port-prepared-{key(params)}.bin" if d else None


def _aligned(n: int) -> np.ndarray:
    """An uninitialised uint8 buffer of ``n`` bytes starting at an ``ALIGN``-byte address."""
    raw = np.empty(n + ALIGN, np.uint8)
    off = -raw.ctypes.data % ALIGN
    return raw[off : off + n]


def _read(f: Path) -> list[np.ndarray] | None:
    """The leaves stored in ``f`` (views of one aligned buffer), or None if it is damaged."""
    try:
        with open(f, "rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                return None
            n_head = int.from_bytes(fh.read(8), "little")
            head = json.loads(fh.read(n_head))
            base = fh.tell()
            base += -base % ALIGN
            fh.seek(base)
            buf = _aligned(int(head["nbytes"]))
            if fh.readinto(memoryview(buf)) != buf.size or fh.read(1):
                return None  # short or long: torn
        if zlib.crc32(buf) != head["crc32"]:
            return None
        return [
            buf[o : o + np.dtype(d).itemsize * int(np.prod(sh))].view(d).reshape(sh)
            for sh, d, o in head["leaves"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(params, fns, want: list, tree):
    """The cached prepared weights (pytree ``tree`` of jax arrays), or None.

    ``want``: the leaves (anything with ``shape`` and ``dtype``: ``model.prepared_shapes``).
    """
    if fns is not cell.DEFAULT_CELL:
        return None  # another cell's functions may hold values no source file shows
    f = path_for(params)
    if f is None or not f.exists():
        return None
    arrs = _read(f)
    if arrs is None or len(arrs) != len(want):
        return None
    if any(a.shape != w.shape or a.dtype != w.dtype for a, w in zip(arrs, want)):
        return None
    # aligned host buffers: device_put wraps them on the CPU (nothing else holds them, so no one
    # can write to them after this), copies them to an accelerator
    return jax.tree_util.tree_unflatten(tree, [jax.device_put(a) for a in arrs])


def store(params, fns, prepared) -> None:
    """Write ``prepared`` for ``params`` (default cell, compile cache on); else do nothing."""
    if fns is not cell.DEFAULT_CELL:
        return
    f = path_for(params)
    if f is None:
        return
    leaves = [np.ascontiguousarray(np.asarray(a)) for a in jax.tree_util.tree_leaves(prepared)]
    spec, off = [], 0
    for a in leaves:
        spec.append([list(a.shape), a.dtype.str, off])
        off += a.nbytes + (-a.nbytes % ALIGN)
    data = np.zeros(off, np.uint8)
    for a, (_, _, o) in zip(leaves, spec):
        data[o : o + a.nbytes] = memoryview(a).cast("B")
    head = json.dumps({"leaves": spec, "nbytes": off, "crc32": zlib.crc32(data)}).encode()
    with atomic_file(f, mode=0o644) as tmp, open(tmp, "wb") as fh:
        fh.write(MAGIC + len(head).to_bytes(8, "little") + head)
        fh.write(b"\0" * (-fh.tell() % ALIGN))
        fh.write(memoryview(data))
