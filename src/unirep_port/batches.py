"""Records taken ``n`` at a time from a stream: the one batching rule of every reps path.

The CLI's reference and automatic-port paths, ``jax_port``'s streaming reps and the sharded
driver read a FASTA stream lazily and hand it on in groups; each group is the next ``n`` records
in input order, the last one shorter, and nothing is read ahead of the group being built.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batches(records: Iterable[T], n: int) -> Iterator[list[T]]:
    """Successive lists of ``n`` records (the last may be shorter; none is empty)."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    it = iter(records)
    while block := list(itertools.islice(it, n)):
        yield block
