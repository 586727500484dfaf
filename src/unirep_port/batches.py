"""Records taken ``n`` at a time: the batching rules of every reps path.

:func:`batches`: the CLI's reference and automatic-port paths, ``jax_port``'s streaming reps and
the sharded driver read a FASTA stream lazily and hand it on in groups; each group is the next
``n`` records in input order, the last one shorter, and nothing is read ahead of the group being
built. :func:`by_length`: the paths that hold every sequence (the oracles, the reference's and the
automatic port's batched reps) group them by length instead, so that a group pads little.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def batches(records: Iterable[T], n: int) -> Iterator[list[T]]:
    """Successive lists of ``n`` records (the last may be shorter; none is empty)."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    it = iter(records)
    while block := list(itertools.islice(it, n)):
        yield block


def by_length(seqs: Sequence[Sized], n: int) -> list[np.ndarray]:
    """Indices into ``seqs`` from the shortest to the longest (equal lengths in input order), cut
    into groups of ``n`` (the last may be shorter; none is empty)."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    order = np.argsort([len(s) for s in seqs], kind="stable")
    return [order[start : start + n] for start in range(0, len(order), n)]
