"""The shared comparison of tests/tolerance.py: it passes within the tolerance, and a failure
names the position, both values and where the tolerance comes from."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import BRIEF_H, RUN_C, Tol, assert_close


def test_within_the_tolerance_passes():
    want = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    assert_close(want + np.float32(9e-7), want, BRIEF_H)
    assert_close(want * 1000, want * 1000 * (1 + 9e-6), RUN_C)  # the relative part


def test_a_failure_names_position_values_and_source():
    want = np.zeros((2, 3))
    got = want.copy()
    got[1, 2] = 2e-6
    with pytest.raises(AssertionError) as exc:
        assert_close(got, want, BRIEF_H, "h_final")
    msg = str(exc.value)
    assert "h_final" in msg and "(1, 2)" in msg and "2e-06" in msg
    assert BRIEF_H.source in msg


def test_nan_and_shape_are_never_close():
    tol = Tol(1.0, 1.0, "a wide one, for this test")
    with pytest.raises(AssertionError, match="at \\(0,\\)"):
        assert_close([np.nan, 0.0], [np.nan, 0.0], tol)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(3), np.zeros(4), tol)
