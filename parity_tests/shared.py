"""Compute once, judge many times: one run's implementation outputs, shared by content.

Several checks of one parity run need the same numbers: the downstream parity and the fast-mode
certificate both need the port's "highest" 1900 reps of the same avGFP variants; every candidate
that ``weights validate`` judges is compared with the same reference outputs on the original
weights; the golden check and the kill-rate control both run the port on the golden panel. Each
such value is computed by the first check that asks and handed to the others, keyed by what it is
a function of -- the implementation, a hash of the weights' content (or the identity of a live
reference graph), a hash of the sequences, the precision -- never by test order, so the same run
gives the same numbers whichever tests are selected and in whatever order.

:data:`STORE` is the process's store; the parity conftest names the running test
(:attr:`Store.current`) so the report's "shared computations" section can say who computed what
and who reused it. Values are kept while they fit :data:`MAX_BYTES` (oldest dropped first).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_BYTES = 6 * 2**30  # the 1900 model's per-position outputs of a real panel are ~0.3 GB
_TOKENS = itertools.count()


def seqs_digest(seqs: Sequence[str]) -> str:
    """SHA-256 of an ordered list of sequences."""
    h = hashlib.sha256()
    for s in seqs:
        h.update(s.encode() + b"\n")
    return h.hexdigest()[:16]


def graph_token(obj) -> str:
    """A run-unique name for a live object (a reference graph): equal only to itself."""
    tok = getattr(obj, "_shared_token", None)
    if tok is None:
        tok = f"graph-{next(_TOKENS)}"
        obj._shared_token = tok
    return tok


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(_nbytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


@dataclass
class Entry:
    what: str
    key: tuple
    computed_by: str
    seconds: float
    nbytes: int
    reused_by: list[str] = field(default_factory=list)


class Store:
    """Values by content key, with a log of who computed and who reused each."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.current = "(outside a test)"
        self._values: OrderedDict[tuple, object] = OrderedDict()
        self.log: dict[tuple, Entry] = {}

    def get(self, what: str, key: tuple, compute: Callable[[], object]):
        """The value of ``what`` for ``key``: computed now, or reused from an earlier check."""
        full = (what, *key)
        if full in self._values:
            self._values.move_to_end(full)
            entry = self.log[full]
            if self.current not in entry.reused_by and self.current != entry.computed_by:
                entry.reused_by.append(self.current)
            return self._values[full]
        t0 = time.perf_counter()
        value = compute()
        n = _nbytes(value)
        self.log[full] = Entry(what, key, self.current, time.perf_counter() - t0, n)
        if n <= self.max_bytes:
            self._values[full] = value
            while sum(self.log[k].nbytes for k in self._values) > self.max_bytes:
                self._values.popitem(last=False)
        return value

    def section(self) -> dict:
        """The report's "shared computations" section: what was reused, and what that saved."""
        shared = [e for e in self.log.values() if e.reused_by]
        saved = sum(e.seconds * len(e.reused_by) for e in shared)
        rows = [
            {
                "what": e.what,
                "key": " ".join(str(k) for k in e.key),
                "computed by": e.computed_by,
                "seconds": round(e.seconds, 2),
                "reused by": ", ".join(e.reused_by),
            }
            for e in shared
        ]
        return {
            "ok": True,
            "summary": (
                f"{len(self.log)} implementation outputs computed once each; {len(shared)} of "
                f"them reused by later checks ({sum(len(e.reused_by) for e in shared)} reuses), "
                f"saving about {saved:.0f} s of recomputation. Keys are content hashes (weights, "
                "sequences, precision) or a live reference graph, never test order."
            ),
            "rows": rows,
        }


STORE = Store()


def port_reps(params, seqs: Sequence[str], size: int, precision: str = "highest"):
    """The port's ``(h_avg, h_final, c_final)`` of ``seqs`` (canonical ``params``), computed once
    per run per (weights' content, sequences, precision) and shared read-only."""
    from unirep_port import jax_port
    from unirep_port.parity.oracle import params_digest

    def compute():
        out = tuple(
            np.asarray(r) for r in jax_port.get_reps(seqs, params, size, precision=precision)
        )
        for a in out:
            a.flags.writeable = False
        return out

    key = (size, params_digest(params)[:16], seqs_digest(seqs), len(seqs), precision)
    return STORE.get("port reps", key, compute)
