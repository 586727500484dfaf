"""Hand FASTA parser (``unirep_port.fasta``) vs Biopython, measured side by side in one run.

    python -m unirep_port.benchmarks.fasta_parse [--records 100000]
        [-o benchmarks/results/fasta-parse.json]

Same seeded synthetic file for every parser (lengths 50-500, 60 residues a line), plain and
gzip. Each parser does the same work the CLI needs: structure, letters validated
(``alphabet.normalize``), duplicate ids checked. Best of ``--repeats`` runs, ``perf_counter``.
Also records what each parser does with a BOM + CRLF file, a gzip file opened by name, and
sequence data before the first header (message text). pyfastx is recorded as absent when it
cannot be imported (it is not on this machine's package index).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from unirep_port import fasta
from unirep_port.alphabet import STANDARD_AA, normalize

AA = np.frombuffer(STANDARD_AA.encode(), np.uint8)


def write_fasta(path: Path, n: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    residues = 0
    with open(path, "w") as fh:
        for i in range(n):
            length = int(rng.integers(50, 501))
            s = AA[rng.integers(0, 20, length)].tobytes().decode()
            residues += length
            body = "\n".join(s[j : j + 60] for j in range(0, length, 60))
            fh.write(f">UniRef50_S{i:08d} synthetic record {i}\n{body}\n")
    return residues


def _check(records) -> int:
    seen: set[str] = set()
    n = 0
    for rid, seq in records:
        normalize(seq, rid)
        if rid in seen:
            raise ValueError(f"duplicate {rid}")
        seen.add(rid)
        n += 1
    return n


def hand(path: Path) -> int:
    return sum(1 for _ in fasta.read_fasta(path))


def bio_simple(path: Path) -> int:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return _check((t.split(None, 1)[0], s) for t, s in SimpleFastaParser(fh))


def bio_seqio(path: Path) -> int:
    from Bio import SeqIO

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return _check((r.id, str(r.seq)) for r in SeqIO.parse(fh, "fasta"))


def _outcome(fn, path: Path) -> str:
    try:
        return f"ok: {fn(path)} records"
    except Exception as exc:  # recording what each parser says
        return f"{type(exc).__name__}: {exc}"[:300]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-o", "--output", default="benchmarks/results/fasta-parse.json")
    args = ap.parse_args(argv)
    parsers = {"hand (unirep_port.fasta)": hand, "biopython SimpleFastaParser": bio_simple}
    parsers["biopython SeqIO.parse"] = bio_seqio
    try:
        import pyfastx  # noqa: F401

        pyfastx_note = "installed but not measured"
    except ImportError:
        pyfastx_note = "not installable here (absent from this machine's package index)"
    import Bio

    out: dict = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "biopython": Bio.__version__,
        "pyfastx": pyfastx_note,
        "records": args.records,
        "timings_s": {},
    }
    with tempfile.TemporaryDirectory() as d:
        plain = Path(d) / "synthetic.fasta"
        out["residues"] = write_fasta(plain, args.records)
        gz = Path(d) / "synthetic.fasta.gz"
        with open(plain, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            dst.write(src.read())
        out["bytes_plain"], out["bytes_gzip"] = plain.stat().st_size, gz.stat().st_size
        for label, fn in parsers.items():
            for kind, path in (("plain", plain), ("gzip", gz)):
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    n = fn(path)
                    times.append(time.perf_counter() - t0)
                assert n == args.records, (label, kind, n)
                out["timings_s"][f"{label} / {kind}"] = round(min(times), 3)
        # Behaviour on what users have: BOM + CRLF, a gzip file whose name says nothing,
        # data before the first header.
        bom = Path(d) / "bom.fa"
        bom.write_bytes(b"\xef\xbb\xbf>a x\r\nMKV\r\n>b\r\nMM\r\n")
        nogz = Path(d) / "looks-plain.fa"
        nogz.write_bytes(gzip.compress(b">a\nMKV\n"))
        headless = Path(d) / "headless.fa"
        headless.write_text("MKV\n>a\nMM\n")
        out["behaviour"] = {
            label: {
                "bom_crlf": _outcome(fn, bom),
                "gzip_named_.fa": _outcome(fn, nogz),
                "data_before_header": _outcome(fn, headless),
            }
            for label, fn in parsers.items()
        }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
