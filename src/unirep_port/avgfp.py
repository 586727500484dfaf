"""Loader for the avGFP brightness landscape shipped in ``data/avgfp`` (Sarkisyan et al. 2016)."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

WILD_TYPE = (
    "SKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTLVTTLSYGVQCFSRYPDHMKQHDFFKSAMPEGYV"
    "QERTIFFKDDGNYKTRAEVKFEGDTLVNRIELKGIDFKEDGNILGHKLEYNYNSHNVYIMADKQKNGIKVNFKIRHNIEDGSVQLADHYQQN"
    "TPIGDGPVLLPDNHYLSTQSALSKDPNEKRDHMVLLEFVTAAGITHGMDELYK"
)
_HERE = Path(__file__).resolve().parent
# A checkout keeps the data at the repository root; an installed wheel carries it in the package.
_ROOT = _HERE.parents[1]  # src/unirep_port -> the repository root
DATA_DIR = _ROOT / "data" if (_ROOT / "data" / "avgfp").is_dir() else _HERE / "data"
DEFAULT_TSV = DATA_DIR / "avgfp" / "amino_acid_genotypes_to_brightness.tsv"
# log10 median brightness separating the dark mode (~1.3-1.7) from the bright mode (~3.5-3.8) of the
# bimodal landscape; the seed paper's Figure 5 classifies bright vs dark variants.
BRIGHT_THRESHOLD = 2.5


@dataclass(frozen=True)
class Variant:
    name: str  # the aaMutations string ("WT" for the wild type)
    sequence: str  # 237 aa
    brightness: float  # log10 median brightness

    @property
    def bright(self) -> bool:
        return self.brightness > BRIGHT_THRESHOLD


def apply_mutations(mutations: str, wild_type: str = WILD_TYPE) -> str:
    """Apply ``SA108D:SN144D``-style mutations (0-based positions) to ``wild_type``.

    Raises ValueError naming the token when its wild-type letter does not match the sequence.
    """
    seq = list(wild_type)
    for token in filter(None, mutations.split(":")):
        if len(token) < 4 or token[0] != "S" or not token[2:-1].isdigit():
            raise ValueError(f"malformed mutation token {token!r} in {mutations!r}")
        wt, pos, new = token[1], int(token[2:-1]), token[-1]
        if pos >= len(seq) or wild_type[pos] != wt:
            found = wild_type[pos] if pos < len(seq) else "past the end"
            raise ValueError(
                f"mutation {token!r}: wild type has {found!r} at position {pos}, not {wt!r}"
            )
        seq[pos] = new
    return "".join(seq)


def load_variants(
    n: int | None = None, seed: int = 0, path: str | Path = DEFAULT_TSV, include_wt: bool = True
) -> list[Variant]:
    """Read the landscape, dropping nonsense (``*``) variants.

    Args:
        n: a seeded random subset of this many variants (the wild type first when ``include_wt``);
            ``None`` for all.
        seed: seed of the subset draw (``random.Random(seed)``), so the subset is fixed.
    """
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    wt_rows = [r for r in rows if not r["aaMutations"]]
    others = [r for r in rows if r["aaMutations"] and "*" not in r["aaMutations"]]
    if n is not None:
        k = max(0, n - (1 if include_wt and wt_rows else 0))
        others = random.Random(seed).sample(others, k)
    chosen = (wt_rows[:1] if include_wt else []) + others
    return [
        Variant(
            name=r["aaMutations"] or "WT",
            sequence=apply_mutations(r["aaMutations"]),
            brightness=float(r["medianBrightness"]),
        )
        for r in chosen
    ]
