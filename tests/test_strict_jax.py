"""The suite's strict JAX settings (``conftest.py``): implicit rank and dtype promotion are errors.

Expected: JAX's documented behaviour under ``jax_numpy_rank_promotion="raise"`` (a ValueError
naming the option for ``(2, 3) + (3,)``) and under ``jax_numpy_dtype_promotion="strict"`` (a
TypePromotionError for ``float32 + int32``), and the port's bias add, written out, passing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unirep_port.jax_port import cell


def test_rank_promotion_raises_in_every_test():
    assert jax.config.jax_numpy_rank_promotion == "raise"
    with pytest.raises(ValueError, match="jax_numpy_rank_promotion='raise'"):
        jnp.ones((2, 3)) + jnp.ones(3)


def test_dtype_promotion_is_strict_in_every_test():
    assert jax.config.jax_numpy_dtype_promotion == "strict"
    with pytest.raises(jax.dtypes.TypePromotionError, match="strict"):
        jnp.ones(2, jnp.float32) + jnp.ones(2, jnp.int32)


def test_the_ports_bias_and_logit_layer_run_under_it():
    """``input_proj`` and ``logits`` add a bias to a batch; the sums equal NumPy's broadcast."""
    rng = np.random.default_rng(0)
    x, wx, wmx = rng.normal(size=(2, 10)), rng.normal(size=(10, 16)), rng.normal(size=(10, 4))
    b, w, bo = rng.normal(size=16), rng.normal(size=(4, 25)), rng.normal(size=25)
    x, wx, wmx, b, w, bo = (jnp.asarray(a, jnp.float32) for a in (x, wx, wmx, b, w, bo))
    xw, _ = cell.input_proj(x, wx, wmx, b)
    np.testing.assert_array_equal(np.asarray(xw), np.asarray(jnp.dot(x, wx)) + np.asarray(b))
    h = jnp.ones((3, 2, 4), jnp.float32)
    out = cell.logits(h, w, bo)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jnp.dot(h, w)) + np.asarray(bo))


@pytest.mark.allow_rank_promotion
def test_a_test_marked_allow_rank_promotion_keeps_jaxs_default():
    """The porting kit's tests run TF-style broadcasting (tf2jax's ops): the marker exempts them."""
    assert jax.config.jax_numpy_rank_promotion != "raise"
    assert jax.config.jax_numpy_dtype_promotion != "strict"
    assert (jnp.ones((2, 3)) + jnp.ones(3)).shape == (2, 3)
