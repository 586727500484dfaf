"""The amino-acid alphabet of UniRep, tokenisation and input validation.

The integer codes are those of the original release (``data_utils.py`` in churchlab/UniRep,
``aa_to_int``): 0 is padding, 1..22 are residues, 23 is "unknown" (X, and the ambiguity codes
B, Z, J map onto it), 24 is the start token and 25 the stop token.

Input conventions, decided here once for every implementation in the kit:

* Leading and trailing whitespace is stripped (the original called ``seq.strip()``).
* Lowercase letters are accepted and upper-cased (FASTA files often mark low-complexity regions in
  lowercase; the residue is the same). The original raised a ``KeyError`` on them.
* Whitespace *inside* a sequence, ``*`` (a translated stop codon), ``-``/``.`` (alignment gaps),
  digits and any other character are rejected with a ``ValueError`` that names the sequence and
  the offending characters with their positions.
* An empty sequence, an empty collection and a non-string element are errors too.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PAD = 0
START = 24
STOP = 25
VOCAB_SIZE = 26  # rows of the embedding matrix
N_OUTPUTS = 25  # logits: tokens 1..25, i.e. everything but padding

# Mirrors ``aa_to_int`` in churchlab/UniRep data_utils.py (lines 16-44 of the released file).
AA_TO_INT: dict[str, int] = {
    "M": 1,
    "R": 2,
    "H": 3,
    "K": 4,
    "D": 5,
    "E": 6,
    "S": 7,
    "T": 8,
    "N": 9,
    "Q": 10,
    "C": 11,
    "U": 12,  # selenocysteine
    "G": 13,
    "P": 14,
    "A": 15,
    "V": 16,
    "I": 17,
    "F": 18,
    "Y": 19,
    "W": 20,
    "L": 21,
    "O": 22,  # pyrrolysine
    "X": 23,  # unknown
    "Z": 23,  # glutamic acid or glutamine
    "B": 23,  # asparagine or aspartic acid
    "J": 23,  # leucine or isoleucine
}
# Token -> letter for decoding (sampling). 23 decodes to X; 24/25 are not letters.
INT_TO_AA: dict[int, str] = {v: k for k, v in AA_TO_INT.items() if k not in "ZBJ"}
INT_TO_AA[STOP] = "*"

ALPHABET = "".join(sorted(AA_TO_INT))
# The 20 standard residues (no U, O, X or the ambiguity codes), alphabetical: what random test and
# benchmark sequences draw from.
STANDARD_AA = "".join(sorted(set(AA_TO_INT) - set("UOXZBJ")))

_LUT = np.full(256, -1, dtype=np.int32)
for _letter, _code in AA_TO_INT.items():
    _LUT[ord(_letter)] = _code
    _LUT[ord(_letter.lower())] = _code


def _describe(where: str | int) -> str:
    return f"sequence {where!r}" if isinstance(where, str) else f"sequence #{where}"


def normalize(seq: object, where: str | int = 0) -> str:
    """Validate one sequence and return it stripped and upper-cased.

    Args:
        seq: the amino-acid string, without start/stop tokens.
        where: how to name the sequence in an error: its index in the caller's input or its
            FASTA id.

    Raises:
        TypeError: ``seq`` is not a string.
        ValueError: ``seq`` is empty or holds characters outside the alphabet; the message names
            the sequence and each bad character with its 0-based position.
    """
    if not isinstance(seq, str):
        raise TypeError(
            f"{_describe(where)} is a {type(seq).__name__}, not a string of amino-acid letters"
        )
    s = seq.strip()
    if not s:
        raise ValueError(f"{_describe(where)} is empty")
    try:
        raw = s.encode("ascii")
    except UnicodeEncodeError:
        raw = None
    if raw is not None:
        codes = _LUT[np.frombuffer(raw, dtype=np.uint8)]
        if (codes >= 0).all():
            return s.upper()
    bad = [(i, ch) for i, ch in enumerate(s) if ch.upper() not in AA_TO_INT]
    shown = ", ".join(f"{ch!r} at {i}" for i, ch in bad[:10])
    more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
    hint = ""
    if any(ch == "*" for _, ch in bad):
        hint = " ('*' is a stop codon: cut the sequence there)"
    elif any(ch.isspace() for _, ch in bad):
        hint = " (whitespace inside a sequence is not allowed)"
    raise ValueError(
        f"{_describe(where)} has {len(bad)} invalid character(s): {shown}{more}{hint}; "
        f"accepted letters are {ALPHABET} (lowercase is upper-cased)"
    )


def validate_sequences(seqs: str | Iterable[str], ids: Iterable[str] | None = None) -> list[str]:
    """Validate one sequence or many, returning a list of normalised strings in input order.

    A single string is treated as one sequence. ``ids`` (e.g. FASTA ids) name sequences in errors;
    without them the 0-based index is used.
    """
    if isinstance(seqs, str):
        seqs = [seqs]
    if isinstance(seqs, bytes | bytearray):
        raise TypeError("sequences must be str, not bytes; decode them first")
    seqs = list(seqs)
    if not seqs:
        raise ValueError("no sequences given (the input is empty)")
    names = list(ids) if ids is not None else list(range(len(seqs)))
    return [normalize(s, n) for s, n in zip(seqs, names, strict=True)]


def tokenize(seq: str, stop: bool = False) -> np.ndarray:
    """Integer tokens of one *validated* sequence: start token 24, then residues.

    This is ``aa_seq_to_int(seq)[:-1]`` of the original when ``stop`` is false (what reps use),
    and the full ``aa_seq_to_int(seq)`` with the stop token 25 when true (training targets).
    Returns int32 of shape (len(seq) + 1,) or (len(seq) + 2,).
    """
    body = _LUT[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
    parts = [np.array([START], np.int32), body.astype(np.int32)]
    if stop:
        parts.append(np.array([STOP], np.int32))
    return np.concatenate(parts)


def pad_batch(seqs: list[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tokenise validated sequences into a right-padded (batch, time) int32 array.

    Returns ``(tokens, lengths)`` where ``lengths`` counts tokens including the start token, and
    positions at or past ``lengths[b]`` hold ``PAD`` (0). ``length`` pads to at least that many.
    """
    toks = [tokenize(s) for s in seqs]
    lengths = np.array([len(t) for t in toks], dtype=np.int32)
    width = max(int(lengths.max()), length or 0)
    out = np.zeros((len(toks), width), dtype=np.int32)
    for i, t in enumerate(toks):
        out[i, : len(t)] = t
    return out, lengths
