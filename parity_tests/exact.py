"""One sequence's float64 outputs, and how far an implementation's outputs are from them.

The per-sequence drift statistics of the real-protein panel (``realpanel``), written once for
both oracles' drift passes (the NumPy loops in ``oracle`` and the compiled ``oracle_jax``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

STATS = ("hs", "h_avg", "h_final", "c_final")


class Exact(NamedTuple):
    """One sequence's float64 outputs: ``hs`` (L, H) and the three reps (H,)."""

    hs: np.ndarray
    h_avg: np.ndarray
    h_final: np.ndarray
    c_final: np.ndarray


def put_drift(d: dict, i: int, ex: Exact, h, h_avg, h_final, c_final) -> None:
    """Write sequence ``i``'s drift from float64 into ``d`` (``{stat: (n,)}``): ``hs`` the mean
    over positions of the largest ``|h - h64|`` over units, ``h_avg`` / ``h_final`` the largest
    unit error, ``c_final`` relative to the sequence's largest ``|c64|`` (as ``compare``
    measures errors). ``h`` may be None when ``d["hs"][i]`` is already known (the compiled oracle
    accumulates it on the device)."""
    c_scale = max(float(np.abs(ex.c_final).max()), float(np.finfo(np.float32).tiny))
    if h is not None:
        d["hs"][i] = np.abs(np.asarray(h, np.float64) - ex.hs).max(axis=1).mean()
    d["h_avg"][i] = np.abs(np.asarray(h_avg, np.float64) - ex.h_avg).max()
    d["h_final"][i] = np.abs(np.asarray(h_final, np.float64) - ex.h_final).max()
    d["c_final"][i] = np.abs(np.asarray(c_final, np.float64) - ex.c_final).max() / c_scale
