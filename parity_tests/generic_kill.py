"""The generic judge on models it has never seen: kill rate, false alarms, each verdict's power.

Five TF models written apart from the judge, each with a correct hand port (the control),
equivalent rewrites (must pass) and planted porting bugs (must fail):

* ``lstm``, ``gru`` (``generic_models``): library cells through ``dynamic_rnn``;
* ``transformer`` (``generic_transformer``): post-LN encoder, LayerNorm epsilon 1e-12, erf GELU;
* ``birnn`` (``generic_birnn``): conv1d -> ``bidirectional_dynamic_rnn`` (GRU, sequence
  lengths: ``ReverseSequence``, converted by the kit's rule) -> masked attention;
* ``convnet`` (``generic_convnet``): even-width and dilated conv1d, inference batch norm, masked
  max.

:func:`kill_table` judges every variant once (the default oracle choice, one conversion per
model). :func:`false_alarms` judges the controls and rewrites again on fresh seeded inputs and
witnesses, and counts how often a faithful port is called a FAIL, against the judge's stated
false-alarm probability.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from unirep_port.parity import generic_birnn, generic_convnet, generic_transformer
from unirep_port.parity import generic_models as gm
from unirep_port.porting import drift
from unirep_port.porting.judge import judge
from unirep_port.porting.oracles import choose_oracle

N_INPUTS = 3  # batches judged per verdict


@dataclass
class Model:
    """One architecture: its reference, port, inputs and variants (name -> (kind, what))."""

    name: str
    reference: object
    port: object  # port(weights, variant) -> JAX function
    weights: dict
    inputs: object  # inputs(rng) -> list of argument tuples
    names: tuple
    time_axis: tuple
    variants: dict
    taps: dict

    def oracle(self, args: tuple):
        """The judge's default oracle choice for this model, made once (``args``: an input)."""
        if "_oracle" not in self.__dict__:
            self.__dict__["_oracle"] = choose_oracle(self.reference, args, "auto", need_tf=True)
        return self.__dict__["_oracle"]

    def candidate(self, variant):
        """The port of ``variant``, made once (its jitted function compiles once per shape)."""
        cache = self.__dict__.setdefault("_ports", {})
        if variant not in cache:
            cache[variant] = self.port(self.weights, variant)
        return cache[variant]


def _old(name: str, seed: int) -> Model:
    """The two models of ``generic_models`` in this module's shape."""
    if name == "lstm":
        ref, port, make = gm.lstm_lm(seed), gm.lstm_port, gm.example_tokens
        names = ("logits", "h_final")
    else:
        ref, port, make = gm.gru_encoder(seed), gm.gru_port, gm.example_features
        names = ("outputs", "h_final")
    variants = {b: ("bug", what) for b, (m, what) in gm.BUGS.items() if m == name}
    return Model(
        name,
        ref,
        port,
        gm.weights_of(ref),
        lambda rng: make(rng, N_INPUTS, 12),
        names,
        (1, None),
        variants,
        {},
    )


def _new(module, seed: int) -> Model:
    ref = module.reference(seed)
    return Model(
        module.__name__.rsplit("_", 1)[-1],
        ref,
        module.port,
        gm.weights_of(ref),
        lambda rng: module.example_inputs(rng, N_INPUTS),
        module.NAMES,
        module.TIME_AXIS,
        module.VARIANTS,
        module.TAPS,
    )


@functools.cache
def models(seed: int = 0) -> tuple[Model, ...]:
    """The five models, built once per process and seed (the TF1 library cells refuse a
    second build of the same stacked cell in one process)."""
    return (
        _old("lstm", seed),
        _old("gru", seed),
        *(_new(m, seed) for m in (generic_transformer, generic_birnn, generic_convnet)),
    )


def _judge(model: Model, variant, inputs, oracle, seed: int, **kw):
    return judge(
        model.reference,
        model.candidate(variant),
        inputs,
        time_axis=model.time_axis,
        lengths=lambda x, n: n,
        names=model.names,
        oracle=oracle,
        seed=seed,
        **kw,
    )


def _row(model: Model, variant, v) -> dict:
    kind, what = model.variants.get(variant, ("control", "correct port"))
    worst = max(v.leaves, key=lambda r: r.max_ratio)
    caught = [
        t
        for t, bad in (
            ("place", any(r.max_ratio > 1 for r in v.leaves)),
            ("bulk", any(not r.bulk["ok"] for r in v.leaves)),
        )
        if bad
    ]
    return {
        "model": model.name,
        "variant": variant or "control",
        "kind": kind,
        "what": what,
        "verdict_ok": v.ok,
        "worst_ratio": worst.max_ratio,
        "worst_output": worst.output,
        "bulk_ratio": max(r.bulk["ratio"] for r in v.leaves),
        "caught_by": "+".join(caught) or "-",
        "power": v.power,
        "expected": "PASS" if kind in ("control", "rewrite") else "FAIL",
        "right": v.ok == (kind in ("control", "rewrite")),
    }


def kill_table(seed: int = 0, only: tuple[str, ...] | None = None) -> dict:
    """Judge every model's (or ``only`` those models') control, rewrites and bugs once."""
    rows, oracles = [], {}
    for model in models(seed):
        if only is not None and model.name not in only:
            continue
        inputs = model.inputs(np.random.default_rng(seed))
        chosen = model.oracle(inputs[0])
        oracles[model.name] = chosen.name
        for variant in [None, *model.variants]:
            rows.append(_row(model, variant, _judge(model, variant, inputs, chosen.oracle, seed)))
    bugs = [r for r in rows if r["kind"] == "bug"]
    faithful = [r for r in rows if r["kind"] != "bug"]
    killed = sum(not r["verdict_ok"] for r in bugs)
    passed = sum(r["verdict_ok"] for r in faithful)
    powers = [r["power"] for r in faithful if r["power"] is not None]
    return {
        "ok": killed == len(bugs) and passed == len(faithful),
        "summary": f"kill rate {killed}/{len(bugs)} on {', '.join(oracles)}; correct ports and "
        "rewrites pass "
        f"{passed}/{len(faithful)}; power: a faithful verdict catches a relative change of "
        f"{min(powers):.2g} to {max(powers):.2g}",
        "kill_rate": killed / len(bugs),
        "faithful_pass_rate": passed / len(faithful),
        "oracles": oracles,
        "rows": rows,
    }


def false_alarms(n_seeds: int = 5, first_seed: int = 100) -> dict:
    """Judge every control and rewrite on ``n_seeds`` fresh seeded inputs and witnesses.

    The stated false-alarm probability of one judgement is at most ``alpha + alpha_bulk``
    (the per-place bound and the bulk test, each Bonferroni-corrected inside). With ``n`` runs
    and no false alarm the 95% upper confidence limit of the rate is ``1 - 0.05 ** (1 / n)``.
    """
    rows = []
    for model in models(0):
        first = model.inputs(np.random.default_rng(first_seed))
        oracle = model.oracle(first[0]).oracle
        faithful = [None, *(v for v, (k, _) in model.variants.items() if k == "rewrite")]
        for s in range(first_seed, first_seed + n_seeds):
            inputs = model.inputs(np.random.default_rng(s))
            for variant in faithful:
                v = _judge(model, variant, inputs, oracle, s, power=False)
                rows.append(
                    {
                        "model": model.name,
                        "variant": variant or "control",
                        "seed": s,
                        "ok": v.ok,
                        "worst_ratio": max(r.max_ratio for r in v.leaves),
                        "bulk_ratio": max(r.bulk["ratio"] for r in v.leaves),
                        "bulk_p": min(r.bulk["p_value"] for r in v.leaves),
                    }
                )
    n, alarms = len(rows), sum(not r["ok"] for r in rows)
    stated = drift.ALPHA_SEQUENCE + drift.ALPHA_BULK
    return {
        "ok": alarms <= _allowed(n, stated),
        "summary": f"{alarms} false alarm(s) in {n} judgements of correct ports and equivalent "
        f"rewrites (stated rate <= {stated:g} per judgement; 95% upper limit of the observed "
        f"rate {_upper(n, alarms):.3g}); worst place ratio "
        f"{max(r['worst_ratio'] for r in rows):.3g}, worst bulk ratio "
        f"{max(r['bulk_ratio'] for r in rows):.3g} (fails only significantly above "
        f"{drift.BULK_FACTOR:g})",
        "runs": n,
        "false_alarms": alarms,
        "stated_rate": stated,
        "rows": rows,
    }


def _allowed(n: int, rate: float) -> int:
    """The most alarms a judge with false-alarm rate ``rate`` shows in ``n`` runs, at 1e-3."""
    from scipy import stats

    return int(stats.binom.isf(1e-3, n, rate))


def _upper(n: int, k: int) -> float:
    """95% upper Clopper-Pearson limit of a rate with ``k`` events in ``n`` runs."""
    from scipy import stats

    return 1 - 0.05 ** (1 / n) if k == 0 else float(stats.beta.ppf(0.95, k + 1, n - k))


def localisation(seed: int = 0) -> list[dict]:
    """A failing port with taps on each new architecture: the first diverging tap it names."""
    out = []
    for model in models(seed):
        if not model.taps:
            continue
        inputs = model.inputs(np.random.default_rng(seed))
        oracle = model.oracle(inputs[0])  # with TF's twin: the taps' oracle
        for variant, (kind, what) in model.variants.items():
            if kind != "bug":
                continue
            v = _judge(model, variant, inputs, oracle, seed, taps=model.taps, power=False)
            first = v.first_diverging_tap
            out.append(
                {
                    "model": model.name,
                    "variant": variant,
                    "what": what,
                    "first_diverging_tap": None if first is None else first.name,
                    "taps": [(t.name, t.status) for t in v.taps],
                }
            )
    return out


__all__ = ["Model", "false_alarms", "kill_table", "localisation", "models"]
