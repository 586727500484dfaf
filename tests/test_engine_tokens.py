"""The steps look tokens up with clipping, so the host checks them; valid ones: the same numbers.

Real published weights (64 model) and real proteins. The expected values are the engine's outputs
with the lookup it had before (``jnp.take``'s default fill mode, NaN for a row out of range),
which the parity suite checked against the TF reference.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unirep_port import jax_port
from unirep_port.fasta import read_fasta
from unirep_port.jax_port import engine, model


@pytest.fixture(scope="module")
def m64(published):
    return model.as_model(jax_port.from_canonical(published(64)), 64)


def _proteins(n: int) -> list[str]:
    path = Path(__file__).resolve().parents[1] / "parity_tests" / "data" / "real_proteins.fasta"
    return [s for _, s in list(read_fasta(str(path)))[:n]]


def test_clipped_lookup_gives_the_fill_mode_numbers_bit_for_bit(m64, monkeypatch):
    toks = jax_port.encode(_proteins(24))
    got = engine.run_reps(toks, m64, tail_floor=None)
    real_take = jnp.take

    def fill_take(a, idx, axis=None, mode=None, **kw):  # the lookup before: default mode
        return real_take(a, idx, axis=axis, **kw)

    monkeypatch.setattr(jnp, "take", fill_take)
    jax.clear_caches()  # retrace the chunk with the old lookup
    try:
        want = engine.run_reps(toks, m64, tail_floor=None)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [26, -1, 99])
def test_out_of_range_token_is_named_before_anything_runs(m64, bad):
    toks = jax_port.encode(["MKV", "MKTAYIA"])
    toks[1] = toks[1].copy()
    toks[1][3] = bad
    chunks = engine.run_stats()["chunks"]
    with pytest.raises(ValueError, match=rf"sequence 1: token {bad} at position 3 .*26-row"):
        engine.run_reps(toks, m64)
    assert engine.run_stats()["chunks"] == chunks  # nothing was dispatched


def test_valid_edges_pass_the_check():
    model.check_tokens([np.array([0, 25, 24], np.int32), np.array([], np.int32)])
