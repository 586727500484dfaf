"""pytest-benchmark configuration for the benchmark matrix.

Options: ``--bench-quick`` (the quick workload set), ``--bench-sizes 64,256``,
``--bench-impls jax-port,tf-batched``, ``--bench-workloads paper-10,grid-b8-l64`` and
``--bench-max-tokens N`` narrow the matrix; ``--gpu`` makes a missing GPU an error instead of a
skip. Every test is parametrised over device ``cpu`` and ``gpu`` (marked ``gpu``: ``-m gpu``
selects the GPU half, ``-m "not gpu"`` the CPU half). At session end all records go to
``benchmarks/results/<machine-id>-<device>.json`` (one file per device that ran), next to
pytest-benchmark's own ``--benchmark-json`` output.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from unirep_port.benchmarks import harness, matrix
from unirep_port.benchmarks.adapters import IMPLS

_RECORDS: dict[str, list[dict]] = {}


def pytest_addoption(parser):
    g = parser.getgroup("unirep benchmarks")
    g.addoption("--bench-quick", action="store_true", help="quick workload set, 2 warm rounds")
    g.addoption("--bench-sizes", default="", help="comma-separated sizes (default all)")
    g.addoption("--bench-impls", default="", help="comma-separated implementations")
    g.addoption("--bench-workloads", default="", help="comma-separated workload names")
    g.addoption("--bench-max-tokens", type=int, default=None, help="skip larger workloads")
    g.addoption("--gpu", action="store_true", help="fail (not skip) when JAX sees no GPU")


def _csv(config, name: str) -> list[str]:
    return [v for v in config.getoption(name).split(",") if v]


def pytest_generate_tests(metafunc):
    if "bench_cell" not in metafunc.fixturenames:
        return
    cfg = metafunc.config
    sizes = [int(s) for s in _csv(cfg, "--bench-sizes")] or list(matrix.SIZES)
    impls = _csv(cfg, "--bench-impls") or list(IMPLS)
    names = _csv(cfg, "--bench-workloads") or None
    params = []
    for impl, size, name in matrix.cells(cfg.getoption("--bench-quick"), sizes, impls, names):
        for device in ("cpu", "gpu"):
            marks = [pytest.mark.gpu] if device == "gpu" else []
            cell = (impl, size, name, device)
            params.append(pytest.param(cell, marks=marks, id=f"{impl}-{size}-{name}-{device}"))
    metafunc.parametrize("bench_cell", params)


@pytest.fixture(scope="session")
def runner_for(pytestconfig):
    """``runner_for(device)`` -> a session-wide :class:`matrix.Runner` for that device."""
    runners: dict[str, matrix.Runner] = {}

    def get(device: str) -> matrix.Runner:
        if device == "gpu":
            import jax

            try:
                jax.devices("gpu")
            except RuntimeError as err:
                if pytestconfig.getoption("--gpu"):
                    pytest.fail(f"--gpu given but JAX sees no GPU: {err}")
                pytest.skip("JAX sees no GPU backend")
        if device not in runners:
            cap = pytestconfig.getoption("--bench-max-tokens")
            runners[device] = matrix.Runner(device, max_tokens=cap)
        return runners[device]

    return get


@pytest.fixture
def record_result():
    """Append a record to the session's results (written at session end)."""

    def add(rec: dict) -> None:
        _RECORDS.setdefault(rec["device"], []).append(rec)

    return add


def pytest_sessionfinish(session, exitstatus):
    for device, records in _RECORDS.items():
        path = harness.write_results(records, device)
        print(f"\nbenchmark records: {path}")
