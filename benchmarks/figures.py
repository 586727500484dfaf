"""Figures from benchmark results: ``unirep-port figures RESULTS.json... -o DIR``.

Each figure is written as PNG and SVG (matplotlib, Agg backend):

* ``speedup``: warm-time speedup over ``tf-get_rep`` (the original API) on a log scale, one
  panel per model size, a bar per implementation (and device) for each workload the baseline
  ran on; whiskers span (baseline min / impl max, baseline max / impl min). GPU records use the
  CPU ``tf-get_rep`` of the same size and workload as their baseline.
* ``throughput``: tokens/s vs batch (at one length) and vs length (at one batch), grid workloads.
* ``roofline``: measured tokens/s as a fraction of the matmul-throughput bound, per workload.
* ``trace`` (``--trace FILE.npz`` with ``tf_h`` and ``jax_h``, each (L, H)): a few hidden units
  of one sequence along its positions, TF solid and JAX dashed, and max |TF - JAX| per position.
* ``error_vs_length`` (``--parity parity-report.json``): max |h| error vs sequence length per size.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np

BASELINE = "tf-get_rep"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_records(paths) -> list[dict]:
    """All records that ran (not skipped) from one or more results JSON files."""
    recs = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if "records" not in data:
            raise ValueError(f"{path}: not a benchmark results file (no 'records')")
        recs += [r for r in data["records"] if not r.get("skipped")]
    if not recs:
        raise ValueError(f"no measured records in {', '.join(map(str, paths))}")
    return recs


def _label(rec: dict, devices: set[str]) -> str:
    return rec["impl"] if len(devices) == 1 else f"{rec['impl']} ({rec['device']})"


def _color(recs: list[dict], label: str) -> str:
    """The same colour for a label in every panel of a figure."""
    devices = {r["device"] for r in recs}
    labels = sorted({_label(r, devices) for r in recs})
    return f"C{labels.index(label) % 10}"


def _fig_legend(fig, axes) -> None:
    """One legend for the whole figure, right of the panels, each label once."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, handle)
    fig.legend(seen.values(), seen.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def _save(fig, out_dir: str, name: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{name}.{ext}") for ext in ("png", "svg")]
    for p in paths:
        fig.savefig(p, dpi=150 if p.endswith(".png") else None, bbox_inches="tight")
    _plt().close(fig)
    return paths


def speedup_figure(recs: list[dict], out_dir: str) -> list[str]:
    plt = _plt()
    devices = {r["device"] for r in recs}
    base = {}
    for r in recs:
        if r["impl"] == BASELINE and (
            r["device"] == "cpu" or (r["size"], r["workload"]) not in base
        ):
            base[(r["size"], r["workload"])] = r["warm_s"]
    sizes = sorted({s for s, _ in base}, reverse=True)
    if not sizes:
        return []
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.2), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        wls = sorted({w for s, w in base if s == size}, key=_workload_order)
        labels = sorted(
            {_label(r, devices) for r in recs if r["size"] == size and r["impl"] != BASELINE}
        )
        width = 0.8 / max(1, len(labels))
        for k, lab in enumerate(labels):
            xs, ys, lo, hi = [], [], [], []
            for j, w in enumerate(wls):
                match = [
                    r
                    for r in recs
                    if r["size"] == size and r["workload"] == w and _label(r, devices) == lab
                ]
                if not match:
                    continue
                b, t = base[(size, w)], match[0]["warm_s"]
                s = b["median"] / t["median"]
                xs.append(j + (k - (len(labels) - 1) / 2) * width)
                ys.append(s)
                lo.append(s - b["min"] / t["max"])
                hi.append(b["max"] / t["min"] - s)
            err = [np.maximum(lo, 0), np.maximum(hi, 0)]
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=lab, color=_color(recs, lab))
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(wls)), wls, rotation=30, ha="right")
        ax.set_title(f"UniRep {size}: speedup over {BASELINE} (CPU)")
        ax.set_ylabel("speedup (x, warm median; log)")
    fig.tight_layout()
    _fig_legend(fig, axes)
    return _save(fig, out_dir, "speedup")


def _workload_order(name: str):
    parts = name.split("-")
    nums = [int("".join(c for c in p if c.isdigit()) or 0) for p in parts[1:]]
    return (parts[0], *nums)


def _grid(name: str) -> tuple[int, int] | None:
    p = name.split("-")
    return (int(p[1][1:]), int(p[2][1:])) if p[0] == "grid" else None


def throughput_figure(recs: list[dict], out_dir: str) -> list[str]:
    plt = _plt()
    devices = {r["device"] for r in recs}
    grid = [(r, _grid(r["workload"])) for r in recs if _grid(r["workload"])]
    if not grid:
        return []
    sizes = sorted({r["size"] for r, _ in grid}, reverse=True)
    lengths = [g[1] for _, g in grid]
    batches = [g[0] for _, g in grid]
    fix_len = max(set(lengths), key=lengths.count)
    fix_b = max(set(batches), key=lambda b: (batches.count(b), b))
    fig, axes = plt.subplots(2, len(sizes), figsize=(5 * len(sizes), 8), squeeze=False)
    for col, size in enumerate(sizes):
        for row, (axis, fixed) in enumerate(((0, fix_len), (1, fix_b))):
            ax = axes[row][col]
            series = defaultdict(list)
            for r, g in grid:
                if r["size"] == size and g[1 - axis] == fixed:
                    series[_label(r, devices)].append((g[axis], r["tokens_per_s"]))
            xs_seen = set()
            for lab, pts in sorted(series.items()):
                pts.sort()
                ax.plot(*zip(*pts), marker="o", label=lab, color=_color(recs, lab))
                xs_seen.update(x for x, _ in pts)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sorted(xs_seen), [str(x) for x in sorted(xs_seen)])
            ax.minorticks_off()
            what = "batch (sequences)" if axis == 0 else "length (residues)"
            other = f"length {fixed}" if axis == 0 else f"batch {fixed}"
            ax.set_xlabel(what)
            ax.set_ylabel("tokens / s")
            ax.set_title(f"UniRep {size}: throughput vs {what.split()[0]} ({other})")
    fig.tight_layout()
    _fig_legend(fig, axes)
    return _save(fig, out_dir, "throughput")


def roofline_figure(recs: list[dict], out_dir: str) -> list[str]:
    plt = _plt()
    devices = {r["device"] for r in recs}
    sizes = sorted({r["size"] for r in recs}, reverse=True)
    wls = sorted({r["workload"] for r in recs}, key=_workload_order)
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(5.5 * len(sizes), 0.35 * len(wls) + 2), squeeze=False
    )
    for ax, size in zip(axes[0], sizes):
        labels = sorted({_label(r, devices) for r in recs if r["size"] == size})
        for k, lab in enumerate(labels):
            pts = [
                (r["roofline_fraction"], wls.index(r["workload"]))
                for r in recs
                if r["size"] == size and _label(r, devices) == lab
            ]
            ys = [y + (k - (len(labels) - 1) / 2) * 0.12 for _, y in pts]
            ax.scatter([x for x, _ in pts], ys, label=lab, s=18, color=_color(recs, lab))
        ax.set_xscale("log")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks(range(len(wls)), wls)
        ax.set_xlabel("fraction of matmul roofline (tokens/s / bound)")
        ax.set_title(f"UniRep {size}: roofline fraction")
    fig.tight_layout()
    _fig_legend(fig, axes)
    return _save(fig, out_dir, "roofline")


def trace_figure(path: str, out_dir: str, units: int = 5) -> list[str]:
    plt = _plt()
    with np.load(path) as z:
        if "tf_h" not in z or "jax_h" not in z:
            raise ValueError(f"{path}: needs arrays 'tf_h' and 'jax_h' (each (L, H))")
        tf_h, jax_h = z["tf_h"], z["jax_h"]
    if tf_h.shape != jax_h.shape or tf_h.ndim != 2:
        raise ValueError(f"{path}: tf_h {tf_h.shape} and jax_h {jax_h.shape} must be equal (L, H)")
    pos = np.arange(tf_h.shape[0])
    pick = np.argsort(-np.abs(tf_h).mean(0))[:units]  # the most active units
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for k, u in enumerate(pick):
        a.plot(pos, tf_h[:, u], color=f"C{k}", label=f"unit {u}")
        a.plot(pos, jax_h[:, u], color=f"C{k}", ls="--")
    a.set_ylabel("h (solid TF, dashed JAX)")
    a.set_title("Hidden-state trace of one sequence")
    a.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    err = np.abs(tf_h - jax_h).max(1)  # (L,)
    b.semilogy(pos, np.maximum(err, 1e-12))
    b.set_xlabel("position (0 = start token)")
    b.set_ylabel("max |TF - JAX| over units")
    fig.tight_layout()
    return _save(fig, out_dir, "trace")


def error_vs_length_figure(path: str, out_dir: str) -> list[str]:
    plt = _plt()
    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh).get("error_vs_length")
    if not rows:
        raise ValueError(f"{path}: no 'error_vs_length' entries")
    fig, ax = plt.subplots(figsize=(6, 4))
    for size in sorted({r["size"] for r in rows}, reverse=True):
        pts = sorted((r["length"], r["max_abs_h"]) for r in rows if r["size"] == size)
        ax.semilogy(*zip(*pts), marker="o", label=f"UniRep {size}")
    ax.set_xlabel("sequence length (residues)")
    ax.set_ylabel("max |h_TF - h_JAX|")
    ax.set_title("Parity error vs sequence length")
    ax.legend()
    return _save(fig, out_dir, "error_vs_length")


def make_figures(results, out_dir: str, trace: str | None = None, parity: str | None = None):
    """Write every figure the inputs allow; return the written paths."""
    recs = load_records(results)
    paths = speedup_figure(recs, out_dir) + throughput_figure(recs, out_dir)
    paths += roofline_figure(recs, out_dir)
    if trace:
        paths += trace_figure(trace, out_dir)
    if parity:
        paths += error_vs_length_figure(parity, out_dir)
    return paths
