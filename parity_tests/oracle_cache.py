"""What both oracles share: a weights dict's content digest and the float64 states kept per
sequence.

The NumPy oracle (``oracle``) and the compiled one (``oracle_jax``) each compute the float64
states of a sequence; a batched prefetch of the compiled one fills this cache, and
``oracle.oracle_states`` reads it. Keyed by content (size, sequence, weights' digest, backend),
so validating several candidates against one original asks for the same states once. Neither
oracle imports the other for it: both import this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

STATES_KEPT = 8  # sequences' states kept (oracle_jax.PREFETCH_GROUP fills them in one run)
_STATES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def params_digest(params: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of a weights dict's content (keys, dtypes, shapes and bytes), as a cache key."""
    h = hashlib.sha256()
    for k in sorted(params):
        a = np.ascontiguousarray(params[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.reshape(-1).view(np.uint8))  # the bytes in place: no copy of the 1900 weights
    return h.hexdigest()


def get_states(key: tuple) -> tuple[np.ndarray, np.ndarray] | None:
    """The kept ``(cs, hs)`` of ``key`` (``(size, seq, digest, backend)``), or None."""
    return _STATES.get(key)


def put_states(key: tuple, cs: np.ndarray, hs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``(cs, hs)`` read-only under ``key`` (the oldest dropped past ``STATES_KEPT``)."""
    cs.flags.writeable = hs.flags.writeable = False
    _STATES[key] = (cs, hs)
    while len(_STATES) > STATES_KEPT:
        del _STATES[next(iter(_STATES))]
    return cs, hs
