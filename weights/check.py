"""Validation of a canonical parameter dict against the size table (``unirep_port.sizes``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from unirep_port.sizes import detect_size, expected_shapes
from unirep_port.weights.errors import WeightsError


@dataclass
class CheckReport:
    """Outcome of :func:`check`.

    Attributes:
        size: the model size checked against (1900, 256 or 64), or None when it could not be told.
        source: where the parameters came from (a file name, or a description).
        missing: expected canonical keys that are absent.
        unexpected: keys present that the size does not have.
        mismatched: ``(key, got, expected)`` with ``got``/``expected`` as ``"shape dtype"`` text.
        nonfinite: ``(key, count)`` of arrays holding NaN or +-Inf values.
    """

    size: int | None
    source: str = "<params>"
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, str]] = field(default_factory=list)
    nonfinite: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected, mismatched or non-finite."""
        return self.size is not None and not (
            self.missing or self.unexpected or self.mismatched or self.nonfinite
        )

    def format(self) -> str:
        """Human-readable, multi-line summary naming every bad key."""
        head = f"{self.source}: size {self.size if self.size is not None else '?'}"
        if self.ok:
            return f"{head}: OK"
        lines = [f"{head}: PROBLEMS"]
        if self.size is None:
            lines.append("  cannot tell the model size (1900, 256 or 64)")
        lines += [f"  missing key: {k}" for k in self.missing]
        lines += [f"  unexpected key: {k}" for k in self.unexpected]
        lines += [f"  mismatched: {k}: got {g}, expected {e}" for k, g, e in self.mismatched]
        lines += [f"  non-finite: {k}: {n} NaN/Inf values" for k, n in self.nonfinite]
        return "\n".join(lines)

    def raise_if_bad(self) -> None:
        """Raise :class:`WeightsError` carrying :meth:`format` unless :attr:`ok`."""
        if not self.ok:
            raise WeightsError(self.format())


def _describe(arr: object) -> str:
    if isinstance(arr, np.ndarray):
        return f"{tuple(arr.shape)} {arr.dtype}"
    return f"{type(arr).__name__}"


def check(params: Mapping[str, object], size: int | str | None = None, source: str = "<params>"):
    """Compare a parameter dict with the canonical keys, shapes and dtype (float32) of a size.

    Args:
        params: canonical TF variable name -> array.
        size: 1900, 256 or 64; None to guess it from the shapes (``unirep_port.sizes.detect_size``).
        source: a name for messages (usually the file the parameters were read from).

    Returns:
        A :class:`CheckReport`; it never raises for bad content (use ``.raise_if_bad()``).
    """
    if size is None:
        shapes = {k: tuple(np.shape(v)) for k, v in params.items()}
        try:
            size = detect_size(shapes)
        except ValueError:
            return CheckReport(size=None, source=source, unexpected=sorted(params))
    size = int(size)
    expected = expected_shapes(size)
    rep = CheckReport(size=size, source=source)
    rep.missing = [k for k in expected if k not in params]
    rep.unexpected = sorted(k for k in params if k not in expected)
    for key, shape in expected.items():
        if key not in params:
            continue
        arr = params[key]
        ok = (
            isinstance(arr, np.ndarray)
            and arr.dtype == np.float32
            and tuple(arr.shape) == tuple(shape)
        )
        if not ok:
            rep.mismatched.append((key, _describe(arr), f"{tuple(shape)} float32"))
            continue
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            rep.nonfinite.append((key, bad))
    return rep


def checked(
    params: Mapping[str, object], size: int | str | None = None, source: str = "<params>"
) -> tuple[dict[str, np.ndarray], int]:
    """Float32 parameters and their size, or :class:`WeightsError` naming every bad key.

    The one validator the JAX port and the TF reference run on a parameter dict they are handed
    (:func:`check` plus :meth:`CheckReport.raise_if_bad`). Arrays of another floating dtype
    (float64, float16) are first rounded to float32; any other dtype is reported.
    """
    arrs = {k: np.asarray(v) for k, v in params.items()}
    arrs = {
        k: a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a
        for k, a in arrs.items()
    }
    report = check(arrs, size, source)
    report.raise_if_bad()
    return arrs, int(report.size)
