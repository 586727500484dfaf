"""The machine a figure or a cached result was made on: the one reader of ``/proc/cpuinfo``.

Reports (the parity report's CPU record, benchmark results), cache keys (compiled executables,
the fast-mode probe, the reference cache) and the fast mode's bf16 check all describe the CPU
from here. Linux only; elsewhere the platform strings stand in.
"""

from __future__ import annotations

import os
import platform

CPUINFO = "/proc/cpuinfo"
_KERNEL = "/proc/cpuinfo"  # the kernel's file: fixed for the life of the process
_IDENTITY: dict[str, str] = {}  # cpu_identity of _KERNEL, read once (it is on every reps call)


def cpuinfo_lines(path: str | os.PathLike = CPUINFO) -> list[str] | None:
    """The lines of ``path`` without their newlines, or None where it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().splitlines()
    except OSError:
        return None


def _first(lines: list[str], key: str) -> str | None:
    """The first line whose field name is ``key`` (``"model name\\t: ..."``), or None."""
    return next((ln for ln in lines if ln.partition(":")[0].strip() == key), None)


def _fallback() -> str:
    return platform.processor() or platform.machine()


def cpu_model(path: str | os.PathLike = CPUINFO) -> str:
    """The CPU's model name (``model name``), else the platform's processor or machine name."""
    lines = cpuinfo_lines(path)
    line = _first(lines, "model name") if lines else None
    return line.partition(":")[2].strip() if line else _fallback()


def cpu_flags(path: str | os.PathLike = CPUINFO) -> list[str]:
    """The first processor's instruction-set flags, in the kernel's order ([] if unknown)."""
    lines = cpuinfo_lines(path)
    line = _first(lines, "flags") if lines else None
    return line.partition(":")[2].split() if line else []


def cpu_lines(path: str | os.PathLike = CPUINFO) -> tuple[str, str] | None:
    """The first ``model name`` and ``flags`` lines as they stand ("" for one that is absent),
    or None without a cpuinfo: what cache keys hash."""
    lines = cpuinfo_lines(path)
    if lines is None:
        return None
    return _first(lines, "model name") or "", _first(lines, "flags") or ""


def cpu_identity(path: str | os.PathLike = CPUINFO) -> str:
    """Every distinct ``model name`` and ``flags`` line, sorted, each newline-ended (the
    platform string without a cpuinfo): what a cached executable or timing probe was made for.

    The kernel's own file is read once per process: the engine's executable keys and layout
    probes ask on every ``reps`` call."""
    kernel = os.fspath(path) == _KERNEL
    if kernel and _KERNEL in _IDENTITY:
        return _IDENTITY[_KERNEL]
    lines = cpuinfo_lines(path)
    if lines is None:
        return _fallback()
    keep = {ln + "\n" for ln in lines if ln.startswith(("model name", "flags"))}
    out = "".join(sorted(keep))
    if kernel:
        _IDENTITY[_KERNEL] = out
    return out


def describe(path: str | os.PathLike = CPUINFO) -> dict:
    """``{"model", "cores", "flags"}`` (flags only where known), for a report's machine record."""
    out: dict = {"model": cpu_model(path), "cores": os.cpu_count()}
    flags = cpu_flags(path)
    if flags:
        out["flags"] = flags
    return out
