"""Short timings the engine takes once per machine and shape, and keeps: the one probe store.

Two decisions of the engine depend on how this machine's XLA kernels run a shape, which no rule
written in advance gets right on every CPU: whether the fast mode's bf16 GEMM is faster than
float32 (:func:`jax_port.precision.probe`), and which layout of the weight matrices multiplies
faster at a batch size (:func:`jax_port.layout.out_in`). Each is measured once per
:func:`key` (CPU model and flags, jax and jaxlib versions, what is probed, width and batch),
kept in memory for the process and in one JSON file (:func:`store_file`: inside the persistent
compilation cache where it is on, else in the per-user cache folder beside the weights), so a
fresh process reads the decision back instead of timing again -- and takes the same one, which
keeps its outputs reproducible from run to run and process to process (a timing near a
decision's margin could otherwise go either way). Where no folder is writable the results stay
in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import jax

from unirep_port.atomic import atomic_file

LIBRARY_FILE = "probes.json"  # the store's name in the per-user cache folder
_MEMORY: dict[str, dict] = {}
_TIMED: list[int] = []  # compile requests of each probe this process timed (not read back)


def key(kind: str, hidden: int, batch: int) -> str:
    """What a probe's result depends on: CPU model and flags, jax/jaxlib versions, the probe's
    kind and its shape."""
    import jaxlib

    from unirep_port.jax_port.compile_cache import cpu_identity

    raw = f"{cpu_identity()}|jax {jax.__version__}|jaxlib {jaxlib.__version__}|H={hidden}|B={batch}"
    if kind != "fast":  # the fast-mode probe's keys predate the store; they stay valid
        raw += f"|{kind}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def store_file() -> Path:
    """The probe results file: inside the persistent compilation cache where it is on, else
    ``probes.json`` in the per-user cache folder (``weights.published.cache_dir``)."""
    d = jax.config.jax_compilation_cache_dir
    if d:
        return Path(d) / "unirep-port-fast-probe.json"
    from unirep_port.weights.published import cache_dir

    return cache_dir() / LIBRARY_FILE


def known(kind: str, hidden: int, batch: int) -> dict | None:
    """The stored record for (``kind``, ``hidden``, ``batch``) on this machine, or None: nothing
    is timed."""
    k = key(kind, hidden, batch)
    if k not in _MEMORY:
        rec = _read(store_file()).get(k)
        if not (isinstance(rec, dict) and "speedup" in rec):
            return None
        _MEMORY[k] = rec
    return _MEMORY[k]


def _read(f: Path) -> dict:
    """The store's records, or none when it is missing or unreadable."""
    if not f.exists():
        return {}
    try:
        stored = json.loads(f.read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def measured(kind: str, hidden: int, batch: int, measure: Callable[[], dict]) -> dict:
    """The record ``measure()`` returns for (``kind``, ``hidden``, ``batch``) on this machine:
    timed once per :func:`key`, then read back from memory or :func:`store_file`.

    ``measure`` returns a JSON-able dict; ``hidden``, ``batch`` and ``kind`` are added to it. An
    unreadable store is measured again and rewritten (atomically, mode 0644)."""
    rec = known(kind, hidden, batch)
    if rec is not None:
        return rec
    k = key(kind, hidden, batch)
    f = store_file()
    from unirep_port.jax_port import compile_cache

    before = compile_cache.counts()["requests"]
    rec = {"kind": kind, "hidden": hidden, "batch": batch, **measure()}
    _TIMED.append(compile_cache.counts()["requests"] - before)
    _MEMORY[k] = rec
    stored = _read(f)  # re-read: another process may have added its own since
    stored[k] = rec
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(f, mode=0o644) as tmp:
            tmp.write_text(json.dumps(stored, indent=1))
    except OSError:
        pass  # a read-only cache: the decision stays in this process's memory
    return rec


def timed_here() -> tuple[int, int]:
    """``(probes, compile requests)``: how many probes this process timed itself, and the
    executables their timing loops asked for (a process reading the answers back asks none)."""
    return len(_TIMED), sum(_TIMED)


def forget() -> None:
    """Drop the in-memory results (tests; the store file is the compile cache's)."""
    _MEMORY.clear()
