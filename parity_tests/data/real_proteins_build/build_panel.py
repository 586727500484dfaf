"""Rebuild ``../real_proteins.fasta`` and ``manifest.tsv`` from MMseqs2's example UniProtKB sample.

Input: ``examples/QUERY.fasta`` of GitHub soedinglab/MMseqs2 at commit
f71d0a6b57c19e3a8954d8557f065c0fe1f46142 (``git show <commit>:examples/QUERY.fasta > QUERY.fasta``).
Usage: ``python build_panel.py QUERY.fasta`` writes ``proteins.fasta`` and ``manifest.tsv`` here.
The filter is described in ``../README.md``.
"""

from __future__ import annotations

import re
import sys

ALLOWED = set("ACDEFGHIKLMNPQRSTVWYXBZUO")
KEEP = 400


def records(path: str) -> list[tuple[str, str]]:
    out: list[list[str]] = []
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith(">"):
                out.append([line[1:], ""])
            else:
                out[-1][1] += line.strip()
    return [(h, s) for h, s in out]


def kmers(s: str) -> set[str]:
    return {s[i : i + 5] for i in range(len(s) - 4)}


def main(src: str) -> None:
    kept, seen, ids, kept_kmers = [], set(), set(), []
    for header, seq in records(src):
        db, acc, name = header.split(" ")[0].split("|")
        seq = seq.upper()
        if not 50 <= len(seq) <= 1000 or "(Fragment)" in header or set(seq) - ALLOWED:
            continue
        if seq in seen or acc in ids:
            continue
        km = kmers(seq)
        if any(len(km & k2) / min(len(km), len(k2)) >= 0.5 for k2 in kept_kmers):
            continue
        if len(kept) >= KEEP:
            continue
        seen.add(seq)
        ids.add(acc)
        kept_kmers.append(km)
        desc = header.split(" ", 1)[1]
        organism = re.search(r"OS=(.*?) (?:OX=|GN=|PE=)", desc).group(1)
        kept.append((acc, db, name, desc.split(" OS=")[0], organism, seq))
    with open("proteins.fasta", "w") as fh:
        for acc, *_, seq in kept:
            fh.write(f">{acc}\n")
            for i in range(0, len(seq), 60):
                fh.write(seq[i : i + 60] + "\n")
    with open("manifest.tsv", "w") as fh:
        fh.write("accession\tdb\tentry_name\tlength\tprotein_name\torganism\n")
        for acc, db, name, protein, organism, seq in kept:
            fh.write("\t".join([acc, db, name, str(len(seq)), protein, organism]) + "\n")
    print(f"{len(kept)} records")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "QUERY.fasta")
