"""Shared validation and tokenisation (used by both compute paths).

Expected codes come from ``aa_to_int`` of the original ``data_utils.py`` (churchlab/UniRep).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unirep_port.alphabet import (
    AA_TO_INT,
    START,
    STOP,
    normalize,
    pad_batch,
    tokenize,
    validate_sequences,
)
from unirep_port.fasta import read_fasta


def test_codes_match_the_original_table():
    # A literal on purpose: the released code order, an expected value independent of AA_TO_INT.
    assert [AA_TO_INT[a] for a in "MRHKDESTNQCUGPAVIFYWLO"] == list(range(1, 23))
    assert {AA_TO_INT[a] for a in "XBZJ"} == {23}
    assert (START, STOP) == (24, 25)


def test_tokenize_prepends_start_and_stop_is_optional():
    assert tokenize("MKX").tolist() == [24, 1, 4, 23]
    assert tokenize("MKX", stop=True).tolist() == [24, 1, 4, 23, 25]


@pytest.mark.parametrize(
    ("seq", "fragment"),
    [
        ("MK*V", "'*' at 2"),
        ("MK V", "whitespace"),
        ("MK-V", "'-' at 2"),
        ("MK1V", "'1' at 2"),
        ("", "is empty"),
        ("   ", "is empty"),
    ],
)
def test_bad_sequences_name_the_sequence_and_letter(seq, fragment):
    with pytest.raises(ValueError, match="sequence #3") as err:
        validate_sequences(["M", "K", "V", seq])
    assert fragment in str(err.value)


def test_non_string_and_empty_list():
    with pytest.raises(TypeError, match="sequence #1 is a int"):
        validate_sequences(["MK", 5])
    with pytest.raises(ValueError, match="no sequences"):
        validate_sequences([])
    with pytest.raises(TypeError, match="bytes"):
        validate_sequences(b"MKV")


def test_lowercase_and_outer_whitespace_are_normalised():
    assert normalize("  mkV\n") == "MKV"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="".join(AA_TO_INT), min_size=1, max_size=40), min_size=1))
def test_pad_batch_round_trips(seqs):
    tokens, lengths = pad_batch(seqs)
    assert tokens.shape == (len(seqs), max(len(s) for s in seqs) + 1)
    for row, s, n in zip(tokens, seqs, lengths):
        assert n == len(s) + 1
        assert row[:n].tolist() == tokenize(s).tolist()
        assert not row[n:].any()


def test_read_fasta_streams_and_names_bad_records(tmp_path):
    p = tmp_path / "x.fasta"
    p.write_text(">a desc\nMK\nV\n\n>b\nmm\n")
    assert list(read_fasta(p)) == [("a", "MKV"), ("b", "MM")]
    p.write_text(">good\nMK\n>bad_one\nMK!\n")
    it = read_fasta(p)
    assert next(it) == ("good", "MK")
    with pytest.raises(ValueError, match="'bad_one'.*'!' at 2"):
        next(it)
    p.write_text("MKV\n")
    with pytest.raises(ValueError, match="before the first '>'"):
        list(read_fasta(p))


def test_avgfp_loader_checks_wild_type_letters():
    from unirep_port.avgfp import WILD_TYPE, apply_mutations, load_variants

    assert apply_mutations("SS0A") == "A" + WILD_TYPE[1:]
    with pytest.raises(ValueError, match="SA0D"):
        apply_mutations("SA0D")  # position 0 is S, not A
    vs = load_variants(20, seed=1)
    assert vs[0].name == "WT" and len({v.sequence for v in vs}) == 20
    assert all(len(v.sequence) == 237 for v in vs) and np.isfinite([v.brightness for v in vs]).all()
