"""One cell of the portability matrix, run in a fresh process whose environment is the setting.

``python -m unirep_port.parity.portability_worker SPEC.json`` (started by :mod:`parity.portability`;
not meant to be run by hand). For each size in the spec it builds one TF reference graph and
computes, under whatever thread count, oneDNN and ISA settings this process was started with:

* the reference's and the port's outputs on the golden panel (``golden.golden_panel``), and the
  suite's verdict of the port against the stored goldens (``compare.compare``);
* the suite's live check (``engine.run_parity``, what ``weights validate`` runs) on the live panel;
* the port's reps of the live panel in three batch compositions: each sequence alone (batch of 1),
  two rows, and the whole panel in one batch.

It writes ``<name>.json`` (verdicts, largest deviations, what the process saw of its settings)
and ``<name>.npz`` (the arrays, for comparisons across settings) into the spec's directory.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from unirep_port.parity.compare import OUTPUTS, Outputs, error_of

REPS = ("h_avg", "h_final", "c_final")
COMPOSITIONS = {"alone": 1, "two_rows": 2, "full_batch": 256}  # name -> get_reps batch_size


def live_panel(size: int) -> list[tuple[str, str]]:
    """The validation panel; for 1900 its three longest members up to 300 aa (a short panel)."""
    from unirep_port.parity.panel import validation_panel

    panel = validation_panel()
    if size == 1900:
        panel = [p for p in panel if p[0] in ("avGFP_WT", "every_letter", "rand300")]
    return panel


def max_dev(a: Outputs, b: Outputs, names=OUTPUTS) -> dict[str, float]:
    """Largest deviation of ``b`` from ``a`` per output, measured as ``compare`` measures it."""
    out = {}
    for name in names:
        xs, ys = getattr(a, name), getattr(b, name)
        pairs = zip(xs, ys) if name in ("hs", "logits") else [(np.asarray(xs), np.asarray(ys))]
        out[name] = max(float(error_of(name, x, y).max()) for x, y in pairs)
    return out


def _stats(result, a: Outputs, b: Outputs) -> dict:
    """The suite's verdict on ``b`` against ``a``, with ``b``'s largest deviation per output."""
    return {
        "ok": result.ok,
        "max_dev": max_dev(a, b),
        "n_fail": {s.output: s.n_fail for s in result.stats},
        "n_excused": {s.output: s.n_excused for s in result.stats},
        "failures": result.failures(),
    }


def _save_outputs(arrays: dict, prefix: str, o: Outputs) -> None:
    for i, (h, lg) in enumerate(zip(o.hs, o.logits)):
        arrays[f"{prefix}/hs_{i}"], arrays[f"{prefix}/logits_{i}"] = h, lg
    for name in REPS:
        arrays[f"{prefix}/{name}"] = np.asarray(getattr(o, name))


def run_size(size: int, arrays: dict) -> dict:
    from unirep_port import jax_port
    from unirep_port import reference_tf
    from unirep_port import weights
    from unirep_port.parity.compare import compare
    from unirep_port.parity.engine import jax_outputs, run_parity, tf_outputs
    from unirep_port.parity.golden import golden_panel, load_golden

    t0 = time.perf_counter()
    params = weights.load_published(size)
    golden, _ = load_golden(size)
    ids = [i for i, _ in golden_panel()]
    seqs = [s for _, s in golden_panel()]
    live = live_panel(size)
    rec: dict = {"golden_panel": ids, "live_panel": [i for i, _ in live]}
    with reference_tf.Babbler(params, size=size) as babbler:
        tf_g = tf_outputs(babbler, seqs)
        port_g = jax_outputs(params, seqs, size)
        rec["tf_vs_golden"] = max_dev(golden, tf_g)
        rec["tf_equals_golden"] = all(
            np.array_equal(x, y)
            for name in OUTPUTS
            for x, y in zip(getattr(golden, name), getattr(tf_g, name))
        )
        rec["port_vs_golden"] = _stats(
            compare(golden, port_g, ids, size, impl_a="tf-golden", impl_b="jax"), golden, port_g
        )
        result, ref_l, port_l = run_parity(params, params, live, size, babbler=babbler)
    rec["live"] = _stats(result, ref_l, port_l)
    rec["live"]["conditioning"] = result.conditioning
    _save_outputs(arrays, f"{size}/tf_golden", tf_g)
    _save_outputs(arrays, f"{size}/port_golden", port_g)
    _save_outputs(arrays, f"{size}/tf_live", ref_l)
    comps = {}
    live_seqs = [s for _, s in live]
    for name, batch in COMPOSITIONS.items():
        if name == "full_batch":  # what run_parity's port side computed (get_reps, one batch)
            reps = [np.asarray(getattr(port_l, r)) for r in REPS]
        else:
            reps = [
                np.asarray(x) for x in jax_port.get_reps(live_seqs, params, size, batch_size=batch)
            ]
        for r, x in zip(REPS, reps):
            arrays[f"{size}/port_live_{name}/{r}"] = x
        comps[name] = {
            "vs_tf": {r: float(error_of(r, getattr(ref_l, r), x).max()) for r, x in zip(REPS, reps)}
        }
    full = [arrays[f"{size}/port_live_full_batch/{r}"] for r in REPS]
    for name in COMPOSITIONS:
        mine = [arrays[f"{size}/port_live_{name}/{r}"] for r in REPS]
        comps[name]["vs_full_batch"] = {
            r: float(error_of(r, f, m).max()) for r, f, m in zip(REPS, full, mine)
        }
        comps[name]["bitwise_equal_full_batch"] = all(
            np.array_equal(f, m) for f, m in zip(full, mine)
        )
    rec["compositions"] = comps
    rec["seconds"] = time.perf_counter() - t0
    return rec


def observed_settings() -> dict:
    """What this process actually runs under (checked by the matrix, not taken on trust)."""
    import jax
    import tensorflow as tf

    from unirep_port.parity.portability import CONTROLLED as keys

    return {
        "cpus": sorted(os.sched_getaffinity(0)),
        "env": {k: os.environ.get(k) for k in keys},
        "tensorflow": tf.__version__,
        "jax": jax.__version__,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m unirep_port.parity.portability_worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    out_dir, name = Path(spec["dir"]), spec["name"]
    from unirep_port import reference_tf  # noqa: F401  (TF first, with the reference's environment)

    rec: dict = {"name": name, "observed": observed_settings(), "sizes": {}}
    arrays: dict = {}
    for size in spec["sizes"]:
        rec["sizes"][str(size)] = run_size(int(size), arrays)
    np.savez(out_dir / f"{name}.npz", **arrays)
    (out_dir / f"{name}.json").write_text(json.dumps(rec, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
