"""The generic judge's kill rate: correct hand ports pass, every planted porting bug fails.

:func:`kill_table` is the one function that computes it (so the rate never depends on which
tests ran, or in which order): for each model of ``generic_models`` it converts the reference
once (the default :class:`~unirep_port.porting.judge.AutoOracle`), judges the correct port (the
control) and every planted bug on the same inputs, and returns one row per judgement.
"""

from __future__ import annotations

import numpy as np

from unirep_port.parity import generic_models as gm
from unirep_port.porting.judge import AutoOracle, judge

N_INPUTS, T_LEN = 3, 12  # three (2, 12) batches per model: a few short sequences


def _models(seed: int):
    rng = np.random.default_rng(seed)
    return {
        "lstm": (
            gm.lstm_lm(seed),
            gm.lstm_port,
            gm.example_tokens(rng, N_INPUTS, T_LEN),
            ("logits", "h_final"),
        ),
        "gru": (
            gm.gru_encoder(seed),
            gm.gru_port,
            gm.example_features(rng, N_INPUTS, T_LEN),
            ("outputs", "h_final"),
        ),
    }


def kill_table(seed: int = 0) -> dict:
    """Judge the control and every bug of :data:`generic_models.BUGS`; rows plus the rate.

    Returns ``{"ok", "summary", "kill_rate", "controls_pass", "rows"}``; a row is
    ``{model, bug, what, verdict_ok, worst_ratio, worst_output}`` (``bug`` None: the control).
    """
    rows = []
    for name, (ref, port, inputs, names) in _models(seed).items():
        oracle = AutoOracle.of(ref, *inputs[0])
        w = gm.weights_of(ref)
        bugs = [None, *(b for b, (m, _) in gm.BUGS.items() if m == name)]
        for bug in bugs:
            v = judge(
                ref,
                port(w, bug),
                inputs,
                time_axis=(1, None),
                lengths=lambda x, lengths: lengths,
                names=names,
                oracle=oracle,
                seed=seed,
            )
            worst = max(v.leaves, key=lambda r: r.max_ratio)
            rows.append(
                {
                    "model": name,
                    "bug": bug,
                    "what": "correct port (control)" if bug is None else gm.BUGS[bug][1],
                    "verdict_ok": v.ok,
                    "worst_ratio": worst.max_ratio,
                    "worst_output": worst.output,
                }
            )
    controls = [r for r in rows if r["bug"] is None]
    bugs = [r for r in rows if r["bug"] is not None]
    killed = sum(not r["verdict_ok"] for r in bugs)
    controls_pass = all(r["verdict_ok"] for r in controls)
    rate = killed / len(bugs)
    return {
        "ok": bool(controls_pass and killed == len(bugs)),
        "summary": f"kill rate {killed}/{len(bugs)} = {rate:.0%} on LSTM-LM 2x512 and GRU 512; "
        f"correct ports {'pass' if controls_pass else 'FAIL'}",
        "kill_rate": rate,
        "controls_pass": bool(controls_pass),
        "rows": rows,
    }
