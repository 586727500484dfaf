"""The parity report's figures, drawn from the report's JSON (and the traces beside it) as PNGs.

Each function takes the loaded ``parity-report.json`` dict and returns a list of
``(title, caption, png_bytes)``; a figure whose data the JSON lacks is simply not drawn. The HTML
page (``unirep_port.parity.render``) inlines them as base64. Needs matplotlib (the ``test`` or
``report`` extra); :func:`all_figures` returns nothing without it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from unirep_port.parity.compare import h_tolerance, tolerance

OUTPUTS = ("hs", "h_avg", "h_final", "c_final", "logits")
# Colours: the port, the TF reference, the float32 members (witnesses), the bound.
PORT, TF, MEMBERS, BOUND = "#1f77b4", "#d62728", "#7f7f7f", "#2ca02c"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def error_vs_length(data: dict) -> list:
    """Per size, per output: each sequence's largest |TF - port| against its length, the bound,
    and for the sequences the float32 attribution examined the drift from float64 of the
    reference, the float32 members (witnesses) and the port."""
    rows = data.get("error_vs_length") or []
    cond = {r["size"]: r.get("conditioning", {}) for r in data.get("parity", [])}
    out = []
    plt = _plt()
    for size in sorted({r["size"] for r in rows}, reverse=True):
        mine = [r for r in rows if r["size"] == size]
        lengths = np.array([r["length"] for r in mine])
        span = np.arange(1, max(lengths.max(), 2) + 1)
        fig, axes = plt.subplots(1, len(OUTPUTS), figsize=(16, 3.2), sharex=True)
        for ax, name in zip(axes, OUTPUTS):
            err = np.array([r.get(f"err_{name}") or 0.0 for r in mine])
            ax.scatter(lengths, np.maximum(err, 1e-12), s=12, color=PORT, label="|TF - port|")
            ax.plot(span, [tolerance(name, int(n)) for n in span], color=BOUND, label="bound")
            if name == "hs":
                by_id = {r["id"]: r["length"] for r in mine}
                witnessed = [(by_id[k], v) for k, v in cond.get(size, {}).items() if k in by_id]
                for key, colour, label in (
                    ("max_ref_drift", TF, "TF from float64"),
                    ("max_member_drift", MEMBERS, "members from float64"),
                    ("max_port_drift", PORT, "port from float64"),
                ):
                    if witnessed:
                        ax.scatter(
                            [n for n, _ in witnessed],
                            [v[key] for _, v in witnessed],
                            marker="x" if key != "max_port_drift" else "+",
                            s=40,
                            color=colour,
                            label=label,
                        )
            ax.set_yscale("log")
            ax.set_title(f"{size}: {name}")
            ax.set_xlabel("length (residues)")
        axes[0].set_ylabel("max abs error")
        axes[0].legend(fontsize=7, loc="lower right")
        n_w = len(cond.get(size, {}))
        out.append(
            (
                f"Error vs length, {size}",
                f"{len(mine)} sequences; green: the tolerance compare applies (c_final relative). "
                f"hs panel: for the {n_w} sequence(s) over tolerance free-running, the largest "
                "drift from float64 of TF (red x), the float32 members (grey x) and the port "
                "(blue +): a difference the witnesses share is float32 conditioning, not the port.",
                _png(fig),
            )
        )
    return out


def error_vs_position(directory: Path | None) -> list:
    """avGFP wild type's per-position max |TF - port| over the hidden units (the traces the
    parity run saves beside the JSON as ``parity-trace-<size>.npz``) against the bound."""
    if directory is None:
        return []
    traces = sorted(Path(directory).glob("parity-trace-*.npz"))
    if not traces:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 3), squeeze=False)
    for ax, path in zip(axes[0], traces):
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k].astype(np.float64) for k in z.files}
        diff = np.abs(arrays["tf_h"] - arrays["jax_h"]).max(axis=-1)
        ax.semilogy(np.maximum(diff, 1e-12), color="black", lw=1, label="|TF - port|")
        if "f64_h" in arrays:  # each implementation's own drift from float64, per position
            exact = arrays["f64_h"]
            for k, m in enumerate(arrays.get("member_h", [])):
                d = np.abs(m - exact).max(axis=-1)
                ax.semilogy(
                    np.maximum(d, 1e-12),
                    color=MEMBERS,
                    lw=0.8,
                    label="members from float64" if k == 0 else None,
                )
            d_tf = np.abs(arrays["tf_h"] - exact).max(axis=-1)
            ax.semilogy(np.maximum(d_tf, 1e-12), color=TF, lw=0.8, label="TF from float64")
            d_port = np.abs(arrays["jax_h"] - exact).max(axis=-1)
            ax.semilogy(np.maximum(d_port, 1e-12), color=PORT, lw=0.8, label="port from float64")
        ax.axhline(h_tolerance(len(diff) - 1), color=BOUND, label="bound")
        ax.set_title(path.stem.replace("parity-trace-", "avGFP WT, "))
        ax.set_xlabel("position")
    axes[0][0].set_ylabel("max abs h error")
    axes[0][0].legend(fontsize=7)
    return [
        (
            "Error vs position",
            "avGFP wild type, largest over the hidden units per position: |TF - port| (black), "
            "the bound (green) and, where the trace has them, each implementation's drift from "
            "the float64 oracle (TF red, port blue, float32 members grey).",
            _png(fig),
        )
    ]


def step_over_bound(data: dict) -> list:
    """The teacher-forced step check: each examined sequence's step error over its bound."""
    items = [
        (f"{r['size']}/{k}", v.get("step_bound_ratio", 0.0))
        for r in data.get("parity", [])
        for k, v in r.get("conditioning", {}).items()
    ]
    if not items:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(items)), 3))
    ax.bar([k for k, _ in items], [v for _, v in items], color=PORT)
    ax.axhline(1.0, color=BOUND, label="bound (must be <= 1)")
    ax.set_ylabel("step error / bound")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend(fontsize=7)
    return [
        (
            "Step error over bound",
            "TF and the port each step from the float64 state; largest error over the bound "
            "derived from the float32 members.",
            _png(fig),
        )
    ]


def real_protein_drift(data: dict) -> list:
    """Per size: median / p99 / max drift from float64 of the port, TF and each member."""
    out = []
    plt = _plt()
    for name in data.get("sections", [k for k in data if k.startswith("real proteins")]):
        sec = data.get(name)
        if not name.startswith("real proteins") or not isinstance(sec, dict):
            continue
        rows = [r for r in sec.get("rows") or [] if {"stat", "implementation", "max"} <= set(r)]
        if not rows:
            continue
        stats = list(dict.fromkeys(r["stat"] for r in rows))
        fig, axes = plt.subplots(1, len(stats), figsize=(4 * len(stats), 3), squeeze=False)
        for ax, stat in zip(axes[0], stats):
            mine = [r for r in rows if r["stat"] == stat]
            for i, r in enumerate(mine):
                impl = r["implementation"]
                colour = PORT if impl.startswith("jax") else TF if impl == "tf" else MEMBERS
                ax.plot([i, i], [r.get("median") or 1e-12, r["max"]], color=colour, lw=2)
                ax.scatter([i], [r.get("p99") or r["max"]], color=colour, s=16)
            ax.set_xticks(range(len(mine)), [r["implementation"] for r in mine], rotation=60)
            ax.set_yscale("log")
            ax.set_title(f"{name.split()[-1]}: {stat}")
        axes[0][0].set_ylabel("drift from float64 (median-max, dot p99)")
        out.append(
            (
                f"Real-protein drift, {name}",
                "Per implementation: the drift from float64 over the panel, median to max "
                "(dot: 99th percentile). Port blue, TF red, float32 members grey.",
                _png(fig),
            )
        )
    return out


def fastmode(data: dict) -> list:
    """The fast mode's error from float64 against float32's, per sequence length."""
    cert = data.get("fast mode certificate")
    if not isinstance(cert, dict) or not isinstance(cert.get("sizes"), dict):
        return []
    sizes = [s for s in cert["sizes"].values() if s.get("error_vs_length")]
    if not sizes:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3), squeeze=False)
    for ax, s in zip(axes[0], sizes):
        rows = s["error_vs_length"]
        n = [r["length"] for r in rows]
        ax.scatter(n, [r["hs_vs_f64"] for r in rows], s=12, color=TF, label="fast from float64")
        ax.scatter(n, [r["hs_f32_vs_f64"] for r in rows], s=12, color=PORT, label="float32")
        ax.set_yscale("log")
        ax.set_title(f"fast mode, {s['size']}: hs")
        ax.set_xlabel("length (residues)")
    axes[0][0].set_ylabel("max abs from float64")
    axes[0][0].legend(fontsize=7)
    return [("Fast-mode certificate", "Per sequence: hs error from float64.", _png(fig))]


def all_figures(data: dict, directory: Path | None = None) -> dict[str, list]:
    """Figure groups by name; empty without matplotlib."""
    try:
        _plt()
    except ImportError:
        return {}
    return {
        "error_vs_length": error_vs_length(data),
        "error_vs_position": error_vs_position(directory),
        "step_over_bound": step_over_bound(data),
        "real_proteins": real_protein_drift(data),
        "fastmode": fastmode(data),
    }
