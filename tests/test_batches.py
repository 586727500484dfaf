"""``unirep_port.batches``: the one "take N records" rule (CLI, ``jax_port.iter_reps``), and the
one "sequences by length, N at a time" rule (the oracles, the reference, the automatic port).

Expected groups: written out by hand for 0..7 records in groups of 3, and for the lengths below.
"""

from __future__ import annotations

import pytest

from unirep_port.batches import batches, by_length


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


def test_by_length_groups_indices_shortest_first_ties_in_input_order():
    seqs = ["MKV", "M", "MKVLA", "MK", "MKV", "A"]  # lengths 3 1 5 2 3 1
    got = [g.tolist() for g in by_length(seqs, 4)]
    assert got == [[1, 5, 3, 0], [4, 2]]
    assert [g.tolist() for g in by_length(seqs, 6)] == [[1, 5, 3, 0, 4, 2]]
    assert by_length([], 2) == []
    with pytest.raises(ValueError, match="batch size must be >= 1, got 0"):
        by_length(seqs, 0)
