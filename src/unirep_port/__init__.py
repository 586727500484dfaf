"""Shared pieces of the UniRep porting kit: alphabet, tokenisation, validation, size table.

Both compute paths (``reference_tf`` and ``jax_port``) import these, so the two can never
disagree about what a token or a parameter name means.

A checkout holds only part of the package in this folder: the design card's folders
(``reference_tf/``, ``jax_port/``, ``parity_tests/`` ...) join it under their installed names
(``pyproject.toml``'s package-dir) in an install. Python looks in the current folder first, so run
from the repository root, ``import unirep_port`` would find this partial folder before a
non-editable install and ``from unirep_port import reference_tf`` would fail. This folder then
hands the import to the installed package (:func:`_installed_elsewhere`): the root imports what
every other folder does (``tests/test_install.py``). An editable install maps its names onto these
very folders and is left alone.
"""

import sys


def _installed_elsewhere():
    """The installed ``unirep_port`` (loaded, in ``sys.modules``) when this folder is a checkout's
    partial one and a complete package exists on ``sys.path`` outside the checkout; else None.

    Complete means it holds the mapped subpackages (``reference_tf/`` stands for them); this
    folder never does in a checkout, and an installed package always does, so an install never
    hands over and nothing loops.
    """
    import importlib.machinery
    import importlib.util
    import os

    here = os.path.dirname(os.path.realpath(__file__))
    if os.path.isdir(os.path.join(here, "reference_tf")):
        return None  # a complete package: the installed one
    root = os.path.dirname(here)
    elsewhere = [p for p in sys.path if os.path.realpath(p or os.curdir) != root]
    spec = importlib.machinery.PathFinder.find_spec(__name__, elsewhere)
    if spec is None or spec.origin is None or spec.loader is None:
        return None
    there = os.path.dirname(os.path.realpath(spec.origin))
    if there == here or not os.path.isdir(os.path.join(there, "reference_tf")):
        return None  # no install, or an editable one (its names map onto this folder)
    module = importlib.util.module_from_spec(spec)
    sys.modules[__name__] = module  # before it runs: its own submodule imports resolve in it
    spec.loader.exec_module(module)
    return module


if _installed_elsewhere() is None:
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
