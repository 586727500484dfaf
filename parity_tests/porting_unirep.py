"""The automatic port of UniRep as a third implementation, judged by the generic judge.

Three voices per batch ``(tokens, lengths)``: the TF reference (``Babbler.run_batch``), the
automatic port (``porting.unirep.auto_port``: the same graph converted by tf2jax) and the hand
port (``jax_port``); all return ``(hs (B, T, H), h_final (B, H), c_final (B, H))``. The oracle
is the suite's own, written apart from all three: the NumPy float64 mLSTM
(``oracle.oracle_outputs``) for the exact result and ``oracle.float32_ensemble`` (float32
members nudged by one ulp every step) for the witnesses; :func:`suite_oracle` adapts them to the
judge's :class:`~unirep_port.porting.judge.Oracle` contract. Any module with the same two
functions (the compiled ``parity.oracle_jax``) can stand in for ``oracle`` (``module=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from unirep_port.alphabet import INT_TO_AA, pad_batch
from unirep_port.parity import oracle as np_oracle
from unirep_port.porting import judge
from unirep_port.porting import unirep as auto

NAMES = ("hs", "h_final", "c_final")
TIME_AXES = (1, None, None)


def decode(tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The sequences of a padded batch (start token dropped)."""
    return ["".join(INT_TO_AA[int(t)] for t in row[1:n]) for row, n in zip(tokens, lengths)]


def _padded(rows: Sequence[np.ndarray], width: int, dtype) -> np.ndarray:
    """(L_b, H) rows -> (B, width, H), zero past each length."""
    out = np.zeros((len(rows), width, rows[0].shape[-1]), dtype)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out


def suite_oracle(params: Mapping[str, np.ndarray], size: int, module=np_oracle):
    """The suite's float64 oracle and float32 ensemble as a judge :class:`Oracle`.

    ``module`` provides ``oracle_outputs(params, seqs, size)`` and ``float32_ensemble(params, seq,
    size, members=, seed=)``: ``parity.oracle`` (NumPy, the default) or the compiled oracle.
    """

    def oracle(tokens, lengths, *, members: int, seed: int):
        seqs = decode(tokens, lengths)
        width = tokens.shape[1]
        ex = module.oracle_outputs(params, seqs, size)
        exact = (_padded(ex.hs, width, np.float64), ex.h_final, ex.c_final)
        ens = [
            module.float32_ensemble(params, s, size, members=members, seed=seed * 1000 + b)
            for b, s in enumerate(seqs)
        ]
        witnesses = [
            (
                _padded([e.hs[k] for e in ens], width, np.float32),
                np.stack([e.h_final[k] for e in ens]),
                np.stack([e.c_final[k] for e in ens]),
            )
            for k in range(members)
        ]
        return exact, witnesses

    return oracle


def tf_reference(babbler):
    """``(tokens, lengths) -> (hs, h_final, c_final)`` of the TF reference's batched path."""

    def ref(tokens, lengths):
        r = babbler.run_batch(tokens, lengths)
        return r["hs"], r["h_final"], r["c_final"]

    return ref


def hand_port(params: Mapping[str, np.ndarray], size: int):
    """The hand port's ``(tokens, lengths) -> (hs, h_final, c_final)``."""
    from unirep_port import jax_port

    prm = jax_port.from_canonical(params, size) if isinstance(params, Mapping) else params
    fwd = jax.jit(jax_port.forward)

    def fn(tokens, lengths):
        hs, _ = fwd(prm, tokens, lengths)
        _, h_final, c_final = jax_port.get_reps(decode(tokens, lengths), prm, size)
        return hs, h_final, c_final

    return fn


def judge_unirep(size: int, params, babbler, seqs: Sequence[str], batch: int = 2) -> dict:
    """Judge the automatic and the hand port of ``size`` on ``seqs``; a report section's rows.

    Returns ``{"ok", "rows", "verdicts"}``: one row per (implementation, output leaf) with the
    max abs difference from TF, the largest drift from float64 and its ratio to the bound.
    """
    inputs = [pad_batch(list(seqs[i : i + batch])) for i in range(0, len(seqs), batch)]
    oracle = suite_oracle(params, size)
    port = auto.auto_port(params, size)
    candidates = {
        "auto": lambda t, n: auto.forward(port, t, n),
        "hand": hand_port(params, size),
    }
    rows, verdicts = [], {}
    for impl, cand in candidates.items():
        v = judge(
            tf_reference(babbler),
            cand,
            inputs,
            time_axis=TIME_AXES,
            lengths=lambda t, n: n,
            names=NAMES,
            oracle=oracle,
        )
        verdicts[impl] = v
        rows += [
            {
                "size": size,
                "impl": impl,
                "output": r.output,
                "max_abs_vs_tf": r.max_abs_vs_reference,
                "max_drift_vs_float64": r.max_drift,
                "drift_over_bound": r.max_ratio,
                "tf_drift_over_bound": r.reference_ratio,
                "ok": r.ok,
            }
            for r in v.leaves
        ]
    return {"ok": all(v.ok for v in verdicts.values()), "rows": rows, "verdicts": verdicts}
