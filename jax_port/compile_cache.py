"""Compile once per machine: JAX's persistent compilation cache, and a count of real compiles.

:func:`enable` points JAX's persistent cache at a directory (the CLI uses ``<cache>/xla-cache``
beside the weights, ``unirep_port.cli.compile_cache``) with both thresholds at their "cache
everything" values, so the port's compiles -- the engine's chunk functions and the small eager
ops of weight preparation alike -- are written once and read back by every later process.

:func:`counts` reads counters fed by ``jax.monitoring`` listeners (and by
:mod:`jax_port.aot_cache`, whose serialized executables skip the request altogether):
``requests`` counts the executables JAX asked for (its backend-compile event, which also wraps
a persistent-cache lookup), ``cache_hits`` those read back from the persistent cache, and
``compiles`` = requests - hits, the XLA compilations that really ran. Tracing happens on a hit
too, so the engine's :func:`jax_port.engine.compile_count` (traces) is not the number to check
for "compiled nothing".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.monitoring

ENV_OFF = "UNIREP_PORT_NO_COMPILE_CACHE"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_COUNTS = {"requests": 0, "cache_hits": 0, "seconds": 0.0, "aot_hits": 0, "aot_stores": 0}


def _on_duration(event: str, seconds: float, **_) -> None:
    if event == _COMPILE_EVENT:
        _COUNTS["requests"] += 1
        _COUNTS["seconds"] += float(seconds)


def _on_event(event: str, **_) -> None:
    if event == _HIT_EVENT:
        _COUNTS["cache_hits"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_duration)
jax.monitoring.register_event_listener(_on_event)


def note(event: str) -> None:
    """Count an ``aot_hits`` / ``aot_stores`` event of :mod:`jax_port.aot_cache`."""
    _COUNTS[event] += 1


def counts() -> dict[str, int | float]:
    """This process's executable requests, persistent-cache hits, real XLA ``compiles`` and the
    ``seconds`` all requests took (compiles and cache reads); ``aot_hits``: executables loaded
    whole by :mod:`jax_port.aot_cache` (no request at all), ``aot_stores``: ones it wrote."""
    out = dict(_COUNTS)
    out["compiles"] = out["requests"] - out["cache_hits"]
    return out


def cpu_identity() -> str:
    """The host CPU's model and flag lines (:func:`unirep_port.machine.cpu_identity`): what a
    cached executable or timing probe was made for."""
    from unirep_port.machine import cpu_identity

    return cpu_identity()


def off_by_env() -> bool:
    """True when ``$UNIREP_PORT_NO_COMPILE_CACHE`` is set to anything but "", "0" or "false"."""
    return os.environ.get(ENV_OFF, "").strip().lower() not in ("", "0", "false", "no")


def enable(directory: str | os.PathLike) -> Path:
    """Use ``directory`` (created if missing) as JAX's persistent compilation cache.

    Call it before the first compile of the process: JAX decides once whether the cache is in
    use. The environment variables are set too, so child processes (Ray workers) inherit it.
    """
    path = Path(directory).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    settings = {
        "jax_compilation_cache_dir": str(path),
        "jax_persistent_cache_min_compile_time_secs": 0.0,  # short compiles (the 64 model) too
        "jax_persistent_cache_min_entry_size_bytes": -1,  # no size floor, no override
    }
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)
    return path


def directory() -> Path | None:
    """The persistent cache directory in use, or None."""
    d = jax.config.jax_compilation_cache_dir
    return Path(d) if d else None


def default_dir() -> Path:
    """``<weights cache>/xla-cache`` (``weights.published.cache_dir()``): the CLI's persistent
    cache, and where a library call keeps the engine's executables."""
    from unirep_port.weights.published import cache_dir

    return cache_dir() / "xla-cache"


_KEEP: list[Path | None] = []  # executables_in's folder, while one is given


@contextlib.contextmanager
def executables_in(folder: str | os.PathLike | None) -> Iterator[None]:
    """Keep the engine's executables in ``folder`` inside the block (None: in none, memory
    only), whatever JAX's cache and the environment say; JAX's settings are not touched. A
    benchmark starts from an empty folder so; :func:`executables_dir` answers it."""
    before = list(_KEEP)
    _KEEP[:] = [None if folder is None else Path(folder).expanduser().resolve()]
    try:
        yield
    finally:
        _KEEP[:] = before


def keeps_executables() -> bool:
    """Whether :func:`executables_dir` names a folder, answered without building its path
    (what a warm engine call asks)."""
    if _KEEP:
        return _KEEP[0] is not None
    return directory() is not None or not off_by_env()


def executables_dir() -> Path | None:
    """Where :mod:`jax_port.aot_cache` keeps the engine's compiled loops and chunks, or None.

    In order: the folder of :func:`executables_in`; JAX's persistent cache where one is on
    (the CLI's :func:`enable`, or the user's own); None where ``$UNIREP_PORT_NO_COMPILE_CACHE``
    says off; else :func:`default_dir`. So ``jax_port.get_reps`` keeps what it compiled for a
    later process by default, with JAX's persistent cache left off: only the engine's own
    executables are written, nothing of the user's other JAX programs.
    """
    if _KEEP:
        return _KEEP[0]
    d = directory()
    if d is not None:
        return d
    return None if off_by_env() else default_dir()
