"""The judge's oracles: the automatic conversion's, TF's own, and the choice between them.

* :class:`AutoOracle`: the reference converted by :func:`from_tf` (tf2jax plus the kit's rules):
  its float64 twin under a scoped x64 switch is the exact result, and the float32 conversion with
  every parameter nudged by one ulp (up, down or not, seeded) gives each witness.
* :class:`~unirep_port.porting.tforacle.TFOracle`: TF runs the graph's float64 twin and its
  nudged float32 graph; no conversion, so it exists wherever TF runs the reference.

:func:`choose_oracle` takes the automatic one where the graph converts and TF's otherwise, and
cross-checks the two where both run: their exact results must agree to within 1% of one float32
ulp of the value (two float64 evaluations of the same graph differ by float64 rounding, some
1e-16 relative; a disagreement at float32's scale means one of them is not the graph's math).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import numpy as np

from unirep_port.porting import drift
from unirep_port.porting.convert import ConversionError, Converted, from_tf, x64
from unirep_port.porting.tforacle import OracleError, TFOracle, culprit, nudge

CROSS_CHECK_ULPS = 0.01  # the two exact results agree to within this many float32 ulps


def _to64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def _key_of(args) -> tuple:
    return tuple((a.shape, a.dtype.str, a.tobytes()) for a in jax.tree.leaves(args))


class AutoOracle:
    """The oracle of a converted TF function: float64 twin and ulp-nudged witnesses."""

    def __init__(self, port: Converted):
        self.port = port
        self._f32 = jax.jit(port.fn)
        self._f64 = None
        self._memo: dict[tuple, tuple] = {}  # one judge run per candidate asks the same inputs

    @classmethod
    def of(cls, reference, *example_args) -> AutoOracle:
        """The conversion of ``reference`` and its float64 twin, both built here.

        Raises:
            ConversionError: the graph does not convert, or its float64 twin does not build
                (an op TF accepts no float64 for; named).
        """
        oracle = cls(from_tf(reference, *example_args))
        try:
            oracle.port.float64()
        except ValueError as err:
            raise ConversionError(
                f"no float64 twin of the conversion: {culprit(err)} accepts no float64 in TF"
            ) from err
        return oracle

    def __call__(self, *args, members: int, seed: int):
        key = (members, seed, *_key_of(args))
        if key not in self._memo:
            self._memo[key] = self._compute(args, members, seed)
        exact, witnesses = self._memo[key]
        return exact, list(witnesses)

    def _compute(self, args, members: int, seed: int):
        twin = self.port.float64()
        with x64():
            if self._f64 is None:
                self._f64 = jax.jit(twin.fn)
            exact = jax.tree.map(np.asarray, self._f64(twin.params, *jax.tree.map(_to64, args)))
        rng = np.random.default_rng(seed)
        witnesses = []
        for _ in range(members):
            nudged = {n: nudge(v, rng) for n, v in self.port.params.items()}
            witnesses.append(jax.tree.map(np.asarray, self._f32(nudged, *args)))
        return exact, witnesses


@dataclass
class Chosen:
    """The oracle a judgement uses, its name, what was said choosing it, and TF's for taps."""

    oracle: Callable
    name: str
    notes: list[str] = field(default_factory=list)
    tf: TFOracle | None = None
    other: Callable | None = None  # the second oracle, for the cross-check

    def cross_check(self, args) -> dict | None:
        """Compare the two oracles' exact results on ``args`` (None when only one runs)."""
        if self.other is None:
            return None
        a, _ = self.oracle(*args, members=0, seed=0)
        b, _ = self.other(*args, members=0, seed=0)
        worst = 0.0
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            both_nan = np.isnan(x) & np.isnan(y)
            scale = drift.U32 * np.maximum(np.abs(x), np.finfo(np.float32).tiny)
            ulps = np.where(both_nan, 0.0, np.abs(x - y) / scale)
            worst = max(worst, float(np.nan_to_num(ulps, nan=np.inf).max(initial=0.0)))
        ok = worst <= CROSS_CHECK_ULPS
        return {
            "oracles": [self.name, "tf float64 twin"],
            "max_disagreement_float32_ulps": worst,
            "limit_float32_ulps": CROSS_CHECK_ULPS,
            "ok": ok,
            "summary": f"the automatic conversion's and TF's float64 results differ by "
            f"{worst:.3g} float32 ulps (limit {CROSS_CHECK_ULPS:g})",
        }


def _tf_or_none(reference, args, notes: list[str]) -> TFOracle | None:
    try:
        return TFOracle.of(reference, *args)
    except OracleError as err:
        notes.append(f"no TF float64 twin: {err}")
        return None


def choose_oracle(reference, args: tuple, oracle, *, need_tf: bool = False) -> Chosen:
    """The oracle for ``judge(..., oracle=oracle)`` given the first input ``args``."""
    if isinstance(oracle, Chosen):
        return oracle
    if oracle is not None and not isinstance(oracle, str):
        tf = TFOracle.of(reference, *args) if need_tf else None
        return Chosen(oracle, "custom", tf=tf)
    how = oracle or "auto"
    if how not in ("auto", "tf", "convert"):
        raise ValueError(f"judge: oracle must be 'auto', 'tf', 'convert' or an Oracle, got {how!r}")
    if how == "tf":
        tf = TFOracle.of(reference, *args)
        return Chosen(tf, "tf float64 twin", tf=tf)
    notes: list[str] = []
    try:
        auto = AutoOracle.of(reference, *args)
    except ConversionError as err:
        if how == "convert":
            raise
        notes.append(
            f"the automatic conversion is not available ({err}); TF's float64 twin is the oracle"
        )
        try:
            tf = TFOracle.of(reference, *args)
        except OracleError as tf_err:
            raise OracleError(f"no oracle for this reference: {err}; and {tf_err}") from tf_err
        return Chosen(tf, "tf float64 twin", notes, tf=tf)
    tf = _tf_or_none(reference, args, notes) if (how == "auto" or need_tf) else None
    other = tf if how == "auto" else None
    return Chosen(auto, "automatic conversion (float64 twin)", notes, tf=tf, other=other)
