"""The engine's compiled chunk kept as a serialized executable: a fresh process skips tracing,
lowering and the MLIR start-up, not only the XLA compile.

JAX's persistent compilation cache (:mod:`jax_port.compile_cache`) is keyed by the lowered
program, so a process that finds its executable there has still traced the function and lowered
it to MLIR first, a large share of a one-sequence ``reps`` run (the MLIR context and dialects are
built on the first lowering; the profile in ``benchmarks/results/history/reps-e2e-issue18.json``,
``docs/speed.md`` "Not even a lowering"). This module keeps the engine's executables (its
chunks and its one-loop jobs) as ``unirep-port-aot-<key>.xla`` (the bytes of
``jax.experimental.serialize_executable``) in :func:`compile_cache.executables_dir` -- beside
JAX's persistent cache where that is on, else in the same per-user folder, by default even for a
library call -- and a later process loads one directly: its first call compiles nothing. The
folder's executables are pruned to :data:`MAX_BYTES`, least recently used first; a folder that
cannot be written leaves the executable to this process.

The key must change whenever the executable could: it hashes the jax and jaxlib versions, the
backend, device kind and count, the CPU's model and flags (an executable is built for the host's
instruction set), ``XLA_FLAGS``, the x64 and matmul-precision settings, every source file of the
port (``jax_port/*.py``), and the abstract arguments (tree structure with its static data,
shapes, dtypes, shardings). Only the default cell's functions are cached (another cell may hold
values no source file shows). A file that fails to load is removed and the executable built anew.
No pickle is read: the argument and result trees are rebuilt from the call itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

import jax

from unirep_port.atomic import atomic_file
from unirep_port.jax_port import compile_cache

_HERE = Path(__file__).resolve().parent
_MEMO: dict[str, object] = {}
# The same executables by a key made without hashing (see _fast_key): what a warm call looks up.
_FAST: dict[tuple, object] = {}
# An XLA option at its default value: the same program under a cache key of its own (JAX's cache
# key clears the dump options, so a dump option cannot serve). See _fresh_compile.
FRESH = {"xla_embed_ir_in_executable": False}
_STATIC: list[str] = []  # the per-process part of the key, computed once
# The folder's serialized executables are pruned to this, least recently used first (one is
# 0.1-0.2 MB for the 64 model's loop: thousands of shapes and versions fit).
MAX_BYTES = 512 * 2**20


def _static_key() -> str:
    if not _STATIC:
        import jaxlib

        h = hashlib.sha256()
        for p in sorted(_HERE.glob("*.py")):
            h.update(p.name.encode() + p.read_bytes())
        dev = jax.devices()[0]
        parts = [
            jax.__version__,
            getattr(jaxlib, "__version__", "?"),
            dev.platform,
            getattr(dev, "device_kind", "?"),
            str(jax.device_count()),
            compile_cache.cpu_identity(),
            os.environ.get("XLA_FLAGS", ""),
            h.hexdigest(),
        ]
        _STATIC.append(hashlib.sha256("\x00".join(parts).encode()).hexdigest())
    return _STATIC[0]


def _abstract(args) -> str:
    leaves, tree = jax.tree_util.tree_flatten(args)
    # static data shows functions by address; the source hash stands for them
    sig = [re.sub(r" at 0x[0-9a-fA-F]+", "", str(tree))]
    for a in leaves:
        sharding = getattr(a, "sharding", None)
        spec = getattr(sharding, "spec", None)
        sig.append(f"{getattr(a, 'shape', ())}|{getattr(a, 'dtype', type(a))}|{spec}")
    return "\n".join(sig)


def _fresh_compile(jitted, args):
    """``(executable, fresh)``: ``jitted(*args)`` compiled under the :data:`FRESH` cache key,
    which JAX's persistent cache never holds, and ``fresh`` False if it answered anyway.

    An XLA:CPU executable that was read back from JAX's persistent cache serializes without some
    of its functions (a later process loading the blob fails with "NOT_FOUND: Function
    wrapped_iota not found"; tests/test_compile_cache.py), so only a freshly compiled one may be
    stored. A key of its own is not enough: the first fresh compile used to be written under it,
    and the next rebuild (a source change, a removed file) read that back. So JAX's write
    threshold is raised for this one compile and nothing is written under :data:`FRESH`; a hit
    all the same (an entry left by an older version) is seen in the counters and not stored.
    Switching the cache off instead left it off for the rest of the process.
    """
    hits = compile_cache.counts()["cache_hits"]
    old = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float("inf"))
    try:
        compiled = jitted.lower(*args).compile(compiler_options=FRESH)
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old)
    return compiled, compile_cache.counts()["cache_hits"] == hits


def _key(args: tuple, name: str) -> str:
    cfg = f"v3|x64={jax.config.jax_enable_x64}|{name}"
    return hashlib.sha256(f"{_static_key()}\n{cfg}\n{_abstract(args)}".encode()).hexdigest()[:40]


def _fast_key(args: tuple, name: str) -> tuple:
    """The in-process key of ``args``' executable: the tree structure itself (hashable, its
    static data compared by value or identity) and each leaf's shape, dtype and sharding.

    It tells apart exactly what :func:`_key` does within one process (the rest of that key is
    fixed for the process's life, the x64 flag aside), without building and hashing the tree's
    text on every warm call (``docs/speed.md``, "A warm call's host work").
    """
    leaves, tree = jax.tree_util.tree_flatten(args)
    sig = tuple(
        (getattr(a, "shape", ()), getattr(a, "dtype", type(a)), getattr(a, "sharding", None))
        for a in leaves
    )
    return name, jax.config.jax_enable_x64, tree, sig


def _file(key: str) -> str:
    return f"unirep-port-aot-{key}.xla"


def at_hand(args: tuple, name: str, cacheable: bool = True) -> bool:
    """Whether :func:`chunk_call` would find ``args``' executable without compiling: in this
    process's memory or on disk. ``args`` may hold ``jax.ShapeDtypeStruct`` leaves (with their
    shardings) for the arrays; only shapes, dtypes and shardings enter the key."""
    if not cacheable or not compile_cache.keeps_executables():
        return False
    if _fast_key(args, name) in _FAST:
        return True
    key = _key(args, name)
    return key in _MEMO or (Path(compile_cache.executables_dir()) / _file(key)).is_file()


def chunk_call(jitted, args: tuple, out_like, name: str, cacheable: bool = True):
    """``jitted(*args)``'s executable, from memory, from disk, or built (and stored).

    ``out_like``: a value with the result's tree structure (the rebuilt output tree). ``name``
    must carry what the key cannot see in the arguments (the matmul precision the call runs
    under). Returns a callable taking ``*args``; with no folder to keep executables in
    (:func:`compile_cache.executables_dir`), or not ``cacheable`` (another cell's functions),
    it is ``jitted`` itself.
    """
    if not cacheable or not compile_cache.keeps_executables():
        return jitted
    fast = _fast_key(args, name)
    if fast in _FAST:  # a warm call: nothing hashed, no path built
        return _FAST[fast]
    key = _key(args, name)
    if key in _MEMO:
        _FAST[fast] = _MEMO[key]
        return _MEMO[key]
    d = compile_cache.executables_dir()
    from jax.experimental import serialize_executable as se

    in_tree = jax.tree_util.tree_structure((args, {}))
    out_tree = jax.tree_util.tree_structure(out_like)
    path = Path(d) / _file(key)
    fn = None
    if path.is_file():
        try:
            fn = se.deserialize_and_load(path.read_bytes(), in_tree, out_tree)
            compile_cache.note("aot_hits")
        except Exception:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        else:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: among the last to be pruned
    if fn is None:
        fn, fresh = _fresh_compile(jitted, args)
        try:
            blob, tree_in, tree_out = se.serialize(fn)
            if fresh and tree_in == in_tree and tree_out == out_tree:
                with atomic_file(path, mode=0o644) as tmp:  # creates the folder
                    Path(tmp).write_bytes(blob)
                compile_cache.note("aot_stores")
                prune(Path(d), keep=path)
        except Exception:  # an unwritable folder: the executable serves this process only
            pass
    _MEMO[key] = _FAST[fast] = fn
    return fn


def prune(folder: Path, keep: Path | None = None, max_bytes: int | None = None) -> list[Path]:
    """Remove the least recently used ``unirep-port-aot-*.xla`` of ``folder`` (by the time of
    their last load or store) until the rest fit ``max_bytes`` (:data:`MAX_BYTES`); ``keep`` is
    never removed. Other files are not touched. Returns the removed files."""
    limit = MAX_BYTES if max_bytes is None else max_bytes
    files = []
    for f in folder.glob("unirep-port-aot-*.xla"):
        with contextlib.suppress(OSError):
            st = f.stat()
            files.append((st.st_mtime, f.name, st.st_size, f))
    total = sum(size for _, _, size, _ in files)
    removed = []
    for _, _, size, f in sorted(files):
        if total <= limit:
            break
        if f == keep:
            continue
        with contextlib.suppress(OSError):
            f.unlink()
            total -= size
            removed.append(f)
    return removed
