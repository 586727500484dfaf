"""Sequences the engine tests run: real proteins and seeded random ones (one place for both).

``proteins(n)``: the first ``n`` of the real-protein panel
(``parity_tests/data/real_proteins.fasta``, unequal lengths); ``random_seqs(n, length, seed)``:
``n`` seeded random sequences of the 20 standard amino acids, all ``length`` long.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unirep_port.fasta import read_fasta

PANEL = Path(__file__).resolve().parents[1] / "parity_tests" / "data" / "real_proteins.fasta"


def proteins(n: int) -> list[str]:
    return [s for _, s in list(read_fasta(str(PANEL)))[:n]]


def random_seqs(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length)) for _ in range(n)]
