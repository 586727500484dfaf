"""The fixed parity panel: real proteins, every letter, short and long sequences.

Everything is seeded so the panel (and the golden fixtures made from it) never changes silently.
"""

from __future__ import annotations

import random

from unirep_port.alphabet import AA_TO_INT, STANDARD_AA
from unirep_port.avgfp import WILD_TYPE, load_variants

EVERY_LETTER = "".join(sorted(AA_TO_INT))  # 20 standard + U, O and X/B/Z/J


def random_protein(length: int, rng: random.Random, alphabet: str = STANDARD_AA) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def parity_panel(max_length: int = 2000, seed: int = 0) -> list[tuple[str, str]]:
    """``(id, sequence)`` pairs of the full panel.

    avGFP wild type and three seeded variants (237 aa, real proteins); a sequence holding every
    accepted letter (U, O, X, B, Z, J included) and its reverse; lengths 1, 2, 10; seeded random
    proteins of 64, 500, 1,000 and ``max_length`` residues (the long end of the tolerance table).
    """
    rng = random.Random(seed)
    variants = load_variants(4, seed=seed)
    panel = [("avGFP_WT", WILD_TYPE)]
    panel += [(f"avGFP_{v.name}", v.sequence) for v in variants[1:]]
    panel += [
        ("every_letter", EVERY_LETTER * 3),
        ("every_letter_rev", EVERY_LETTER[::-1] * 2 + "M"),
        ("len1_M", "M"),
        ("len2", "MK"),
        ("len10", random_protein(10, rng)),
        ("rand64", random_protein(64, rng)),
        ("rand500", random_protein(500, rng)),
    ]
    for n in (1000, max_length):
        if n <= max_length and not any(s == f"rand{n}" for s, _ in panel):
            panel.append((f"rand{n}", random_protein(n, rng)))
    return panel


def validation_panel(seed: int = 0) -> list[tuple[str, str]]:
    """A shorter panel for ``weights validate`` (seconds on the 1900 model, even under TF)."""
    rng = random.Random(seed)
    return [
        ("avGFP_WT", WILD_TYPE),
        ("every_letter", EVERY_LETTER * 3),
        ("len1_M", "M"),
        ("len10", random_protein(10, rng)),
        ("rand300", random_protein(300, rng)),
    ]
