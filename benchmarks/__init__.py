"""Benchmarks of the UniRep implementations: workloads, adapters, timing, profiles, figures.

Entry points: ``python -m unirep_port.benchmarks.run`` (matrix without pytest), ``pytest benchmarks``
(pytest-benchmark suite), ``unirep-port profile`` and ``unirep-port figures``.
"""

from unirep_port.benchmarks.adapters import IMPLS, Unavailable, make_adapter
from unirep_port.benchmarks.harness import flops_per_token, machine_info, make_record, time_calls
from unirep_port.benchmarks.workloads import Workload, make

__all__ = [
    "IMPLS",
    "Unavailable",
    "Workload",
    "flops_per_token",
    "machine_info",
    "make",
    "make_adapter",
    "make_record",
    "time_calls",
]
