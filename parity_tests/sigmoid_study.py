"""Why the port's cell state was less accurate than TF's, measured: the sigmoid near 1.

The real-protein panel found the 256 model's ``c_final`` farther from float64 than TF's on most
proteins while ``h`` was as accurate. Teacher-forced, one step from the same float32 state, the
matmuls of TF, NumPy and XLA err alike; what differs is the logistic function. A forget gate near
1 multiplies a large ``c_prev`` at every step, so the gate's own rounding is what the cell state
accumulates, and ``1 / (1 + exp(-x))`` (XLA's ``jax.nn.sigmoid`` as well) carries up to twice the
error of the float32 grid below 1. ``jax_port.cell.sigmoid`` evaluates the same function without
that loss; this study measures, on real proteins:

* the function alone: the error of each logistic against float64 on the very forget-gate inputs
  the 256 model sees (all gates, and the saturated ones, f >= 0.9), with the correctly rounded
  float32 value's error as the floor;
* one step of the whole 4-layer stack from the float64 oracle's states rounded to float32: the
  mean ``|c - c_exact|`` and ``|h - h_exact|`` of the last layer for TF, the port, and the port
  with ``jax.nn.sigmoid`` put back (a model prepared with
  ``DEFAULT_CELL._replace(sigmoid=jax.nn.sigmoid)``).

    python -m unirep_port.parity.sigmoid_study [--size 256] [--n 8] [--out PATH]

writes ``parity_tests/results/sigmoid-accuracy.json`` (or ``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from unirep_port.parity.oracle import _sigmoid
from unirep_port.parity.paths import results_dir


def function_errors(z: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean |error| against float64 of each float32 logistic on inputs ``z`` (float32)."""
    import jax
    import tensorflow as tf

    from unirep_port.jax_port import cell

    z = np.asarray(z, np.float32).ravel()
    exact = _sigmoid(z.astype(np.float64))  # the oracle's float64 logistic
    cands = {
        "correctly_rounded": exact.astype(np.float32),
        "port": np.asarray(jax.jit(cell.sigmoid)(z)),
        "jax.nn.sigmoid": np.asarray(jax.jit(jax.nn.sigmoid)(z)),
        "tf.sigmoid": tf.sigmoid(z).numpy(),
    }
    sat = exact >= 0.9
    out = {}
    for name, v in cands.items():
        err = np.abs(v.astype(np.float64) - exact)
        out[name] = {
            "mean_all": float(err.mean()),
            "mean_f_ge_0.9": float(err[sat].mean()),
            "share_not_correctly_rounded": float((v != cands["correctly_rounded"]).mean()),
        }
    out["_inputs"] = {"n": int(z.size), "n_f_ge_0.9": int(sat.sum())}
    return out


def step_errors_by_sigmoid(babbler, params, seq: str, size: int) -> dict[str, dict[str, float]]:
    """One teacher-forced step per position: mean |c|, |h| errors of the last layer vs float64."""
    import jax

    from unirep_port import jax_port
    from unirep_port.parity.oracle import step_exact
    from unirep_port.parity.stepwise import _inputs, _port_steps, _tf_steps

    _, _, tokens, c_prev, h_prev = _inputs(params, seq, size)  # the oracle's states, shifted
    h_ex, c_ex = step_exact(params, size, tokens, c_prev, h_prev)
    runs = {"tf": _tf_steps(babbler, tokens, c_prev, h_prev)}
    port = jax_port.prepare(params, size)
    runs["port"] = _port_steps(port.weights, tokens, c_prev, h_prev)
    xla = jax_port.prepare(port, cell=jax_port.DEFAULT_CELL._replace(sigmoid=jax.nn.sigmoid))
    runs["port_with_jax.nn.sigmoid"] = _port_steps(xla.weights, tokens, c_prev, h_prev)
    return {
        name: {
            "c": float(np.abs(np.asarray(c, np.float64) - c_ex).mean()),
            "h": float(np.abs(np.asarray(h, np.float64) - h_ex).mean()),
        }
        for name, (h, c) in runs.items()
    }


def forget_gate_inputs(params, seq: str, size: int) -> np.ndarray:
    """The float32 forget-gate pre-activations of every layer along the oracle's trajectory."""
    from unirep_port import alphabet
    from unirep_port.parity.oracle import _normed, oracle_states
    from unirep_port.sizes import EMBED_KEY, get_size

    m = get_size(size)
    cs, hs = oracle_states(params, seq, size)
    tokens = alphabet.tokenize(seq)
    h_prev = np.concatenate([np.zeros_like(hs[:1]), hs[:-1]])  # (L+1, layers, H)
    x = np.asarray(params[EMBED_KEY], np.float64)[tokens]  # (L+1, 10)
    out = []
    for i in range(m.n_layers):
        p = _normed(params, size, i)
        mm = (x @ p["wmx"]) * (h_prev[:, i] @ p["wmh"])  # (L+1, H)
        z = x @ p["wx"] + mm @ p["wh"] + p["b"]  # (L+1, 4H)
        out.append(z[:, m.hidden : 2 * m.hidden].astype(np.float32))  # the f block
        x = hs[:, i]
    return np.concatenate(out).ravel()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=8, help="real proteins, spread over the lengths")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    a.out = a.out or results_dir() / "sigmoid-accuracy.json"

    from unirep_port import reference_tf, weights
    from unirep_port.atomic import atomic_file
    from unirep_port.parity.realpanel import real_panel

    params = weights.load_published(a.size)
    panel = real_panel(a.n)
    per_protein = {}
    with reference_tf.Babbler(params, size=a.size) as babbler:
        for acc, seq in panel:
            per_protein[acc] = {"length": len(seq)}
            per_protein[acc].update(step_errors_by_sigmoid(babbler, params, seq, a.size))
            row = per_protein[acc]
            print(
                f"{acc:12s} L={len(seq):4d}  c: tf {row['tf']['c']:.3e}"
                f"  port {row['port']['c']:.3e}"
                f"  port+jax.nn.sigmoid {row['port_with_jax.nn.sigmoid']['c']:.3e}",
                flush=True,
            )
    z = np.concatenate([forget_gate_inputs(params, s, a.size) for _, s in panel])
    funcs = function_errors(z)
    names = ("tf", "port", "port_with_jax.nn.sigmoid")
    summary = {}
    for out in ("c", "h"):
        med = {n: float(np.median([r[n][out] for r in per_protein.values()])) for n in names}
        summary[out] = {
            "median_of_mean_abs_error": med,
            "port_over_tf": med["port"] / med["tf"],
            "port_with_jax.nn.sigmoid_over_tf": med["port_with_jax.nn.sigmoid"] / med["tf"],
            "proteins_port_better_than_tf": sum(
                r["port"][out] < r["tf"][out] for r in per_protein.values()
            ),
        }
    result = {
        "what": "one teacher-forced step of the whole stack, last layer, mean |error| vs float64",
        "size": a.size,
        "proteins": len(panel),
        "machine": platform.processor() or platform.machine(),
        "summary": summary,
        "forget_gate_function_errors": funcs,
        "per_protein": per_protein,
    }
    with atomic_file(a.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"summary": summary, "forget_gate_function_errors": funcs}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
