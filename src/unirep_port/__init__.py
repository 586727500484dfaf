"""Shared pieces of the UniRep porting kit: alphabet, tokenisation, validation, size table.

Both compute paths (``reference_tf`` and ``jax_port``) import these, so the two can never
disagree about what a token or a parameter name means.

In a checkout this folder (``src/unirep_port/``) holds the bottom layer only; the other layers'
folders (``jax_port/``, ``parity_tests/``, ``cli/`` ...) sit at the repository root and join the
package under their installed names (``pyproject.toml``'s package-dir, ``docs/layout.md``). No
folder named ``unirep_port`` is at the root, so a checkout never shadows an install
(``tests/test_install.py``).
"""

from unirep_port.alphabet import (
    AA_TO_INT,
    INT_TO_AA,
    PAD,
    START,
    STOP,
    VOCAB_SIZE,
    normalize,
    tokenize,
    validate_sequences,
)
from unirep_port.fasta import read_fasta
from unirep_port.sizes import SIZES, ModelSize, detect_size, expected_shapes, param_keys

__all__ = [
    "AA_TO_INT",
    "INT_TO_AA",
    "PAD",
    "START",
    "STOP",
    "VOCAB_SIZE",
    "SIZES",
    "ModelSize",
    "detect_size",
    "expected_shapes",
    "normalize",
    "param_keys",
    "read_fasta",
    "tokenize",
    "validate_sequences",
]
