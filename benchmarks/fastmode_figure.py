"""Speed vs error, highest vs fast, per size: the figure of issue 11.

``python -m unirep_port.benchmarks.fastmode_figure [--bench benchmarks/results/fastmode-cpu.json]
[--cert benchmarks/results/fastmode-certificate.json] [-o benchmarks/results/figures]``

x: mean per-position distance of ``hs`` from the float64 oracle on the parity panel (the
certificate, ``parity.fastmode``); y: warm tokens/s on 64 x 238 aa (the benchmark). One
line per model size joins its "highest" and "fast" points. Writes ``fastmode_speed_vs_error``
as PNG and SVG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def plot(bench: dict, cert: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for size, w in sorted(bench["warm"].items(), key=lambda kv: -int(kv[0])):
        sec = cert["sizes"].get(size)
        if sec is None:
            continue
        x = [sec["highest_vs_f64"]["hs"]["mean_abs"], sec["fast_vs_f64"]["hs"]["mean_abs"]]
        y = [w["results"]["highest"]["tokens_per_s"], w["results"]["fast"]["tokens_per_s"]]
        (line,) = ax.plot(x, y, "-", alpha=0.6, label=f"{size}")
        ax.plot(x[0], y[0], "o", color=line.get_color())
        ax.plot(x[1], y[1], "s", color=line.get_color())
        ax.annotate(f"{y[1] / y[0]:.2f}x", (x[1], y[1]), textcoords="offset points", xytext=(6, 0))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean |hs - float64| per position (parity panel)")
    ax.set_ylabel("warm tokens/s, 64 x 238 aa")
    path = bench.get("cpu_bf16_path", "?")
    cpu = bench.get("machine", {}).get("cpu", "")
    ax.set_title(f"highest (o) vs fast (s) by model size\n{cpu} (bf16 path: {path})", fontsize=9)
    ax.legend(title="size", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"fastmode_speed_vs_error.{ext}" for ext in ("png", "svg")]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=str(RESULTS / "fastmode-cpu.json"))
    ap.add_argument("--cert", default=str(RESULTS / "fastmode-certificate.json"))
    ap.add_argument("-o", "--out", default=str(RESULTS / "figures"))
    a = ap.parse_args(argv)
    bench = json.loads(Path(a.bench).read_text())
    cert = json.loads(Path(a.cert).read_text())
    for p in plot(bench, cert, Path(a.out)):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
