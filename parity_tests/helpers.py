"""Comparison helpers shared by the parity tests and the parity report."""

from __future__ import annotations

import pytest


@pytest.fixture
def strict_jax():
    """Strict dtype promotion and rank promotion for the duration of one test, then restore."""
    import jax

    old_dtype = jax.config.jax_numpy_dtype_promotion
    old_rank = jax.config.jax_numpy_rank_promotion
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    try:
        yield
    finally:
        jax.config.update("jax_numpy_dtype_promotion", old_dtype)
        jax.config.update("jax_numpy_rank_promotion", old_rank)
