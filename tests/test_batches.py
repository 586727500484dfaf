"""``unirep_port.batches``: the one "take N records" rule (CLI, ``jax_port.iter_reps``).

Expected groups: written out by hand for 0..7 records in groups of 3.
"""

from __future__ import annotations

import pytest

from unirep_port.batches import batches


@pytest.mark.parametrize(
    "n,want",
    [(0, []), (1, [[0]]), (3, [[0, 1, 2]]), (7, [[0, 1, 2], [3, 4, 5], [6]])],
)
def test_groups_in_input_order_the_last_shorter(n, want):
    assert list(batches(range(n), 3)) == want


def test_nothing_is_read_ahead_of_the_group_being_built():
    read = []

    def records():
        for i in range(10):
            read.append(i)
            yield i

    it = batches(records(), 4)
    assert next(it) == [0, 1, 2, 3] and read == [0, 1, 2, 3]


def test_a_batch_size_below_one_is_an_error():
    with pytest.raises(ValueError, match="batch size must be >= 1, got 0"):
        list(batches([1], 0))
