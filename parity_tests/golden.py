"""Golden fixtures: reference outputs on a fixed panel, made once by the pinned TensorFlow.

``parity_tests/golden/golden_<size>.npz`` holds per-position hidden states and logits plus the
three reps for :func:`golden_panel`; ``golden_<size>.json`` records where they came from (TF and
tf-keras versions, the SHA-256 of the canonical weights file, the panel and its seed). The port is
checked against them without TensorFlow in the ordinary test run; the reference is checked to
still reproduce them by :func:`drift_alarm`, an alarm for TensorFlow upgrades that tells kernel
reordering on another CPU from a change of the computed function.

Regenerate (only on purpose, e.g. after a deliberate TF upgrade):
``python -m unirep_port.parity.golden --size all``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.parity.compare import OUTPUTS, Outputs, error_of
from unirep_port.parity.panel import EVERY_LETTER, random_protein
from unirep_port.weights.published import sha256

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
SEED = 20190326  # the UniRep preprint's bioRxiv date, a fixed seed for the random members


def golden_panel() -> list[tuple[str, str]]:
    """Five sequences: avGFP wild type, every letter, lengths 1 and 10, a random 64-mer."""
    import random

    from unirep_port.avgfp import WILD_TYPE

    rng = random.Random(SEED)
    return [
        ("avGFP_WT", WILD_TYPE),
        ("every_letter", EVERY_LETTER * 3),
        ("len1_M", "M"),
        ("len10", random_protein(10, rng)),
        ("rand64", random_protein(64, rng)),
    ]


def make_golden(size: int, directory: Path = GOLDEN_DIR) -> Path:
    """Run the TF reference on the golden panel with the published weights and store it."""
    import tensorflow as tf

    from unirep_port import reference_tf, weights
    from unirep_port.parity.engine import tf_outputs

    path = weights.fetch(size)
    panel = golden_panel()
    with reference_tf.Babbler(weights.load(path), size=size) as babbler:
        out = tf_outputs(babbler, [s for _, s in panel])
    arrays = {"h_avg": out.h_avg, "h_final": out.h_final, "c_final": out.c_final}
    for i, (hs, lg) in enumerate(zip(out.hs, out.logits)):
        arrays[f"hs_{i}"], arrays[f"logits_{i}"] = hs, lg
    import tf_keras

    meta = {
        "size": size,
        "panel": [{"id": i, "sequence": s} for i, s in panel],
        "seed": SEED,
        "producer": "unirep_port.reference_tf.Babbler.run_batch (TF1 graph mode via tf.compat.v1)",
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "numpy": np.__version__,
        "weights_file": Path(path).name,
        "weights_sha256": sha256(path),
        "created": _dt.date.today().isoformat(),
        "command": "python -m unirep_port.parity.golden --size " + str(size),
    }
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"golden_{size}.npz"
    with atomic_file(target, mode=0o644) as tmp:
        np.savez_compressed(tmp, **arrays)
    (directory / f"golden_{size}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target


def load_golden(size: int, directory: Path = GOLDEN_DIR) -> tuple[Outputs, dict]:
    """The stored reference outputs and their metadata."""
    meta = json.loads((directory / f"golden_{size}.json").read_text())
    with np.load(directory / f"golden_{size}.npz", allow_pickle=False) as z:
        n = len(meta["panel"])
        out = Outputs(
            hs=[z[f"hs_{i}"] for i in range(n)],
            logits=[z[f"logits_{i}"] for i in range(n)],
            h_avg=z["h_avg"],
            h_final=z["h_final"],
            c_final=z["c_final"],
        )
    return out, meta


ALARM_MEMBERS = 16  # float32 members whose spread scales the alarm's bound


@dataclass
class AlarmResult:
    """The verdict of :func:`golden_check` on some outputs against the stored reference ones."""

    size: int
    ok: bool
    factor: float  # drift.tail_factor(ALARM_MEMBERS, ALPHA_ALARM / places)
    members: int
    max_abs: dict = field(default_factory=dict)  # output -> largest |now - golden| (c: relative)
    max_ratio: dict = field(default_factory=dict)  # output -> largest |now - golden| / bound
    worst: dict = field(default_factory=dict)  # output -> "<id> position <t>" of the largest ratio
    scale: dict = field(default_factory=dict)  # output -> largest witness RMS drift from float64

    def summary(self) -> dict:
        return {
            "size": self.size,
            "ok": self.ok,
            "factor": self.factor,
            "members": self.members,
            "max_abs": self.max_abs,
            "max_ratio": self.max_ratio,
            "worst": self.worst,
            "witness_scale": self.scale,
        }

    def section(self, what: str) -> dict:
        """A typed report section: verdict, one-line summary, a row per output (its largest
        difference, that over its derived bound, where, and the witnesses' scale)."""
        worst = max(self.max_ratio, key=self.max_ratio.get) if self.max_ratio else None
        head = (
            f"{what}, size {self.size}: {'PASS' if self.ok else 'FAIL'}; every output within its "
            f"bound derived from {self.members} reordered float32 members (factor "
            f"{self.factor:.2f})"
        )
        if worst is not None:
            head += f"; closest to it: {worst} at {self.max_ratio[worst]:.2f} of the bound"
        rows = [
            {
                "output": k,
                "max |diff|": self.max_abs.get(k),
                "diff / bound": r,
                "where": self.worst.get(k, "-"),
                "witness RMS drift": self.scale.get(k),
            }
            for k, r in self.max_ratio.items()
        ]
        return {**self.summary(), "ok": bool(self.ok), "summary": head + ".", "rows": rows}

    def failures(self) -> list[str]:
        return [
            f"{self.size}/{k}: |now - golden| {self.max_abs[k]:.3g} is {r:.3g}x its bound at "
            f"{self.worst[k]}"
            for k, r in self.max_ratio.items()
            if r > 1
        ]


def drift_alarm(
    size: int,
    now: Outputs,
    params: Mapping[str, np.ndarray] | None = None,
    directory: Path = GOLDEN_DIR,
) -> AlarmResult:
    """Does the reference, run now, still compute what it computed when the goldens were made?

    ``now`` is the reference's output on :func:`golden_panel` (``engine.tf_outputs``); ``params``
    the canonical weights the goldens were made from (default: the published ones). Decided by
    :func:`golden_check`: another CPU, thread count or oneDNN setting sums the same matmuls in
    another order and moves the reference's float32 outputs by rounding (measured on another
    CPU than the goldens': ``docs/portability.md``), which passes; a changed function (another
    sigmoid, forget bias, initial state, padding rule or embedding lookup: ``planted_tf``) moves
    outputs by 1e-3 or more, which sounds the alarm.
    """
    return golden_check(size, now, params, directory)


def golden_check(
    size: int,
    outputs: Outputs,
    params: Mapping[str, np.ndarray] | None = None,
    directory: Path = GOLDEN_DIR,
) -> AlarmResult:
    """Are ``outputs`` on :func:`golden_panel` the stored reference outputs up to float32 rounding?

    Used for the reference run now (:func:`drift_alarm`) and for the port (no TensorFlow needed).
    The bound is derived on these inputs at run time, never set: ``ALARM_MEMBERS`` float32
    implementations of the same math (``oracle.float32_ensemble``) drift from the float64 oracle
    by what rounding alone does at every place; the stored run and the one judged are two more
    such implementations, so their difference has scale ``sqrt(2)`` times the members'
    root-mean-square drift (for ``hs``/``logits``: its running maximum along the sequence). A
    place fails where the difference passes
    ``drift.tail_factor(ALARM_MEMBERS, ALPHA_ALARM / places) * sqrt(2) * scale`` plus
    ``drift.ULP_FLOOR`` ulp of the value, so a faithful float32 evaluation in any summation order
    fails with probability below ``ALPHA_ALARM`` over the whole panel.
    """
    golden, _ = load_golden(size, directory)
    if params is None:
        from unirep_port import weights

        params = weights.load_published(size)
    return rounding_check(golden, outputs, params, golden_panel(), size)


def rounding_check(
    reference: Outputs,
    outputs: Outputs,
    params: Mapping[str, np.ndarray],
    panel: list[tuple[str, str]],
    size: int,
    names: tuple[str, ...] = OUTPUTS,
) -> AlarmResult:
    """Two float32 evaluations of ``panel`` under ``params``: equal up to rounding?

    The rule of :func:`golden_check` (bound derived at run time from ``ALARM_MEMBERS`` float32
    members' drift from the float64 oracle), for any pair of :class:`Outputs`; ``names`` limits it
    to some outputs (e.g. the reps only).
    """
    from unirep_port.parity.drift import ALPHA_ALARM, floor_of, pair_bound, tail_factor

    seqs = [s for _, s in panel]
    scales = witness_scales(params, seqs, size, tuple(names))
    per_seq = sum(2 * (len(s) + 1) if n in ("hs", "logits") else 1 for s in seqs for n in names)
    k = tail_factor(ALARM_MEMBERS, ALPHA_ALARM / per_seq)
    out = AlarmResult(size, True, k, ALARM_MEMBERS)
    for name in names:
        out.max_abs[name], out.max_ratio[name], out.scale[name] = 0.0, 0.0, 0.0
    for i, (sid, _) in enumerate(panel):
        for name in names:
            ref, got = _one(reference, name, i), _one(outputs, name, i)
            if got.shape != ref.shape:
                out.max_ratio[name], out.worst[name] = np.inf, f"{sid} (shape {got.shape})"
                continue
            scale = scales[i][name]
            if name in ("hs", "logits"):
                value = np.abs(ref).max(axis=-1)
            elif name == "c_final":
                value = np.ones(1)  # its error is relative to the row's largest |c| already
            else:
                value = np.abs(ref).max(keepdims=True)
            bound = pair_bound(scale, floor_of(value), k)
            diff = error_of(name, ref, got)
            ratio = diff / bound
            t = int(ratio.argmax())
            out.max_abs[name] = max(out.max_abs[name], float(diff.max()))
            out.scale[name] = max(out.scale[name], float(scale.max()))
            if ratio[t] >= out.max_ratio[name]:
                out.max_ratio[name] = float(ratio[t])
                out.worst[name] = f"{sid} position {t}" if name in ("hs", "logits") else sid
    out.ok = all(r <= 1 for r in out.max_ratio.values())
    return out


_SCALES: dict[tuple, list[dict[str, np.ndarray]]] = {}


def witness_scales(
    params: Mapping[str, np.ndarray], seqs: tuple | list, size: int, names: tuple[str, ...]
) -> list[dict[str, np.ndarray]]:
    """Per sequence and output, the ``ALARM_MEMBERS`` members' RMS drift from the float64 oracle
    (running maximum along the sequence for ``hs``/``logits``), as :func:`rounding_check` uses.

    It depends on the weights and the sequences only, not on what is judged, so it is kept per
    (weights content, sequences, size): a run that judges several outputs on one panel (the
    reference now and the port, or every setting of the portability matrix) pays for it once.
    """
    from unirep_port.parity import oracle
    from unirep_port.parity.drift import rms
    from unirep_port.parity.oracle import float32_ensemble, oracle_outputs, params_digest

    key = (size, params_digest(params), tuple(seqs), tuple(names))
    if key not in _SCALES:
        exact = oracle_outputs(params, list(seqs), size)
        if oracle.DEFAULT_BACKEND == "jax" and len(seqs) > 1:  # one batched run for the panel
            from unirep_port.parity import oracle_jax

            ensembles = oracle_jax.float32_ensembles(params, list(seqs), size, ALARM_MEMBERS)
        else:
            ensembles = [float32_ensemble(params, s, size, members=ALARM_MEMBERS) for s in seqs]
        per_seq = []
        for i, ens in enumerate(ensembles):
            row = {}
            for name in names:
                ex = _one(exact, name, i)
                drift = np.array(
                    [error_of(name, ex, _one(ens, name, j)) for j in range(len(ens.hs))]
                )
                scale = rms(drift)  # (places,)
                row[name] = np.maximum.accumulate(scale) if name in ("hs", "logits") else scale
            per_seq.append(row)
        _SCALES[key] = per_seq
        while len(_SCALES) > 8:  # small arrays; keep the last few panels
            del _SCALES[next(iter(_SCALES))]
    return _SCALES[key]


def _one(o: Outputs, name: str, i: int) -> np.ndarray:
    v = getattr(o, name)
    return np.asarray(v[i])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="all", choices=["all", "1900", "256", "64"])
    args = p.parse_args(argv)
    sizes = [1900, 256, 64] if args.size == "all" else [int(args.size)]
    for size in sizes:
        print(make_golden(size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
