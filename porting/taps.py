"""Taps: named intermediates of a hand port, which the judge bounds when a verdict fails.

A hand port marks what it computes on the way, ``x = tap("layer0/ln1", x)``; outside the judge
:func:`tap` returns ``x`` and records nothing (a Python-level no-op: under ``jax.jit`` it adds
nothing to the compiled program). The user maps each tap to a tensor of the reference graph
(``judge(..., taps={"layer0/ln1": "encoder/layer_0/ln1/add_1:0"})``). On a FAIL the judge runs
the candidate once more per input with :func:`recording` on and ``jax.jit`` disabled, so every
tap sees a concrete array, in program order; a tap reached several times (inside a Python loop
or ``lax.scan``) is stacked along a new leading axis.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import jax
import numpy as np

_RECORDER: list[dict[str, list[np.ndarray]]] = []  # the active recording, innermost last


def tap(name: str, x):
    """Mark ``x`` as the intermediate ``name``; returns ``x`` unchanged."""
    if _RECORDER:
        if isinstance(x, jax.core.Tracer):
            jax.debug.callback(lambda v: _record(name, v), x)
        else:
            _record(name, x)
    return x


def _record(name: str, value) -> None:
    _RECORDER[-1].setdefault(name, []).append(np.asarray(value))


@contextlib.contextmanager
def recording() -> Iterator[dict[str, list[np.ndarray]]]:
    """Within the block every :func:`tap` appends its value under its name (dict order: first
    reached first)."""
    seen: dict[str, list[np.ndarray]] = {}
    _RECORDER.append(seen)
    try:
        yield seen
    finally:
        _RECORDER.pop()


def tapped(candidate: Callable, args: tuple) -> dict[str, np.ndarray]:
    """Run ``candidate(*args)`` eagerly and return its taps, in program order."""
    with recording() as seen, jax.disable_jit():
        jax.block_until_ready(candidate(*args))
    return {k: v[0] if len(v) == 1 else np.stack(v) for k, v in seen.items()}
