"""FASTA input as users have it: plain or compressed files, standard input, BOM and CRLF.

One streaming reader for every engine (the in-process ``reps``, the Ray driver, evotune):

* ``-`` reads standard input.
* Compression is detected from the first bytes, not the name: gzip (and bgzip, which is
  multi-member gzip) ``1f 8b``, bzip2 ``BZh``, xz ``fd 37 7a 58 5a 00``. A zstd stream is named
  and refused (no zstd reader in the standard library).
* Text is UTF-8; a byte-order mark at the start is dropped, and CRLF or lone-CR line ends are
  read as newlines. Bytes that are not UTF-8 raise a ``ValueError`` naming the file and line.
* The id is the header's first word. Duplicate ids are an error that names both records.
* ``strip_stop`` removes exactly one trailing ``*`` (a translated stop codon) from each sequence
  before validation; any other ``*`` is still an error.

Why a hand parser rather than Biopython: see ``benchmarks/results/fasta-parse.json`` (the
measurement, made with ``python -m unirep_port.benchmarks.fasta_parse``) and the README's "Input
conventions". In short, Biopython's ``SimpleFastaParser`` is no faster here, opens no
compressed files itself, and reports neither line numbers nor duplicate ids, which this
module must add around it anyway.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import sys
from collections.abc import Iterator
from typing import NamedTuple

from unirep_port.alphabet import normalize

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class RawRecord(NamedTuple):
    """One FASTA record before validation: id, concatenated sequence lines, header line."""

    id: str
    seq: str
    line: int


def display_name(path: str | os.PathLike) -> str:
    """How errors name an input: the path, or ``<stdin>`` for ``-``."""
    path = os.fspath(path)
    return "<stdin>" if path == "-" else path


def sniff_compression(head: bytes) -> str | None:
    """``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zstd"`` or None (plain) from a file's first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


@contextlib.contextmanager
def open_text(path: str | os.PathLike) -> Iterator[io.TextIOBase]:
    """Open ``path`` (or ``-`` for standard input) as UTF-8 text, decompressing by magic bytes.

    The stream yields ``\\n``-terminated lines whatever the file's line ends, without a BOM.
    """
    name = display_name(path)
    with contextlib.ExitStack() as stack:
        if name == "<stdin>":
            raw = sys.stdin.buffer
            if not isinstance(raw, io.BufferedReader):  # e.g. a BytesIO under a test harness
                raw = io.BufferedReader(raw)  # type: ignore[arg-type]
        else:
            try:
                raw = stack.enter_context(open(path, "rb"))
            except IsADirectoryError:
                raise ValueError(f"{name}: is a directory, not a FASTA file") from None
        kind = sniff_compression(raw.peek(8)[:8])
        if kind == "zstd":
            raise ValueError(
                f"{name}: is zstd-compressed; decompress it first (zstd -dc {name} | "
                "unirep-port reps - ...)"
            )
        stream = {
            "gzip": lambda r: gzip.GzipFile(fileobj=r, mode="rb"),
            "bzip2": lambda r: bz2.BZ2File(r, mode="rb"),
            "xz": lambda r: lzma.LZMAFile(r, mode="rb"),
            None: lambda r: r,
        }[kind](raw)
        # utf-8-sig drops a leading byte-order mark; newline=None turns \r\n and \r into \n.
        # surrogateescape: undecodable bytes reach iter_raw, which names their exact line.
        text = io.TextIOWrapper(
            stream, encoding="utf-8-sig", errors="surrogateescape", newline=None
        )
        try:
            yield text
        finally:
            text.detach() if name == "<stdin>" and kind is None else text.close()


def iter_raw(path: str | os.PathLike) -> Iterator[RawRecord]:
    """Stream FASTA records without validating letters (structure errors are raised here).

    A file with no records, sequence lines before the first header, unreadable compressed data
    or bytes that are not UTF-8 raise ``ValueError`` naming the file (and line where known).
    An empty header gets the id ``FILE:LINE``.
    """
    name = display_name(path)
    rid: str | None = None
    start = 0
    chunks: list[str] = []
    seen = 0
    lineno = 0
    with open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, 1):  # lineno is read after the loop
                if not line.isascii():
                    _check_utf8(line, name, lineno)
                if line[:1] != ">":
                    line = line.strip()
                    if not line or line[0] == ";":
                        continue
                    if line[0] != ">":
                        if rid is None:
                            raise ValueError(
                                f"{name}:{lineno}: sequence data before the first '>' header"
                            )
                        chunks.append(line)
                        continue
                if rid is not None:
                    yield RawRecord(rid, "".join(chunks), start)
                    seen += 1
                header = line[1:].split(None, 1)
                rid = header[0] if header else f"{name}:{lineno}"
                start = lineno
                chunks = []
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise ValueError(
                f"{name}: cannot read compressed data near line {lineno}: {exc}"
            ) from exc
    if rid is not None:
        yield RawRecord(rid, "".join(chunks), start)
        seen += 1
    if seen == 0:
        raise ValueError(f"{name}: no FASTA records found")


def _check_utf8(line: str, name: str, lineno: int) -> None:
    bad = [i for i, ch in enumerate(line) if "\udc80" <= ch <= "\udcff"]
    if bad:
        raise ValueError(
            f"{name}: line {lineno} is not UTF-8 text (byte 0x{ord(line[bad[0]]) - 0xDC00:02x} "
            f"at column {bad[0] + 1}); FASTA must be UTF-8 or ASCII, plain or gzip/bzip2/xz"
        )


def clean(rec: RawRecord, strip_stop: bool = False) -> str:
    """Validate one raw record's sequence (errors name its id); ``strip_stop`` drops one ``*``."""
    seq = rec.seq
    if strip_stop and seq.endswith("*"):
        seq = seq[:-1]
    try:
        return normalize(seq, rec.id)
    except ValueError as exc:
        if not strip_stop and seq.endswith("*") and "*" not in seq[:-1]:
            raise ValueError(
                f"{exc} [record at line {rec.line}; only a trailing '*': pass --strip-stop "
                "(strip_stop=True) to remove one]"
            ) from None
        raise ValueError(f"{exc} [record at line {rec.line}]") from None


def read_fasta(
    path: str | os.PathLike, *, strip_stop: bool = False, unique_ids: bool = True
) -> Iterator[tuple[str, str]]:
    """Stream validated ``(id, sequence)`` pairs from a FASTA file (see the module notes).

    Args:
        path: a file (plain, gzip, bzip2 or xz; detected from its bytes) or ``-`` for stdin.
        strip_stop: remove one trailing ``*`` from each sequence before validating it.
        unique_ids: raise ``ValueError`` naming both records when an id repeats (the default).
            It costs one dict entry per record.
    """
    first: dict[str, tuple[int, int]] = {}
    name = display_name(path)
    for k, rec in enumerate(iter_raw(path)):
        seq = clean(rec, strip_stop)
        if unique_ids:
            prev = first.setdefault(rec.id, (k, rec.line))
            if prev[0] != k:
                raise ValueError(
                    f"{name}: duplicate id {rec.id!r}: record #{k + 1} (line {rec.line}) repeats "
                    f"record #{prev[0] + 1} (line {prev[1]}); ids must be unique"
                )
        yield rec.id, seq
