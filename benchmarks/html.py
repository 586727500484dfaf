"""``benchmarks/results/index.html``: the speed side on one page, in the parity report's style.

Rendered (Jinja2, the parity report's templates) from the benchmark results JSON files of a
folder: the targets and their verdicts first, then the figures ``benchmarks.figures`` draws from
the matrix files (inlined as base64 PNG), each matrix's records, and every file with what it
measured. ``unirep-port report --bench benchmarks/results`` writes it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from unirep_port.atomic import atomic_file
from unirep_port.parity.render import data_uri, environment

_SCALAR = (str, int, float, bool, type(None))


def _load(directory: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            out[path.name] = data
    if not out:
        raise FileNotFoundError(f"{directory}: no benchmark results JSON files")
    return out


def _targets(files: dict[str, dict]) -> list[dict]:
    """Every entry with a ``target`` and an ``ok``: the speed promises and their verdicts."""
    rows = []
    for fname, data in files.items():
        for key, v in data.items():
            if isinstance(v, dict) and "target" in v and "ok" in v:
                measured = next(
                    (v[k] for k in ("speedup", "fraction", "peak_rss_gb") if k in v), None
                )
                rows.append(
                    {
                        "target": key,
                        "ok": v["ok"] is True,
                        "workload": v.get("workload", "-"),
                        "measured": measured,
                        "needed": v["target"],
                        "file": fname,
                    }
                )
    return rows


def _record_rows(data: dict) -> list[dict]:
    rows = []
    records = data.get("records")
    for r in records if isinstance(records, list) else []:
        if not isinstance(r, dict) or r.get("skipped"):
            continue
        warm = r.get("warm_s") if isinstance(r.get("warm_s"), dict) else {}
        rows.append(
            {
                "impl": r.get("impl"),
                "size": r.get("size"),
                "workload": r.get("workload"),
                "tokens": r.get("tokens"),
                "compile s": r.get("compile_s"),
                "warm s (median)": warm.get("median"),
                "tokens/s": r.get("tokens_per_s"),
                "roofline fraction": r.get("roofline_fraction"),
            }
        )
    return rows


def _figures(files: dict[str, dict], directory: Path) -> list:
    try:
        from unirep_port.benchmarks.figures import make_figures
    except ImportError:  # matplotlib absent: the page has its tables only
        return []
    need = {"impl", "device", "workload", "warm_s", "size"}  # what benchmarks.figures plots
    matrices = [
        directory / f
        for f, d in files.items()
        if _record_rows(d) and all(need <= set(r) for r in d["records"] if isinstance(r, dict))
    ]
    if not matrices:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_figures([str(p) for p in matrices], tmp)
        return [
            (Path(p).stem, f"from {len(matrices)} matrix file(s)", data_uri(Path(p).read_bytes()))
            for p in paths
            if p.endswith(".png")
        ]


def render_bench_html(directory: str | os.PathLike) -> str:
    directory = Path(directory)
    files = _load(directory)
    targets = _targets(files)
    described = [
        {
            "file": f,
            "what": next(
                (d[k] for k in ("what", "note", "provenance") if isinstance(d.get(k), str)), "-"
            ),
            "machine": d["machine"].get("cpu")
            if isinstance(d.get("machine"), dict)
            else d.get("machine", "-"),
        }
        for f, d in files.items()
    ]
    matrices = [(f, _record_rows(d)) for f, d in files.items() if _record_rows(d)]
    return (
        environment()
        .get_template("bench.html.j2")
        .render(
            title="UniRep port benchmarks",
            ok=all(t["ok"] for t in targets),
            targets=targets,
            figures=_figures(files, directory),
            matrices=matrices,
            described=described,
        )
    )


def write_bench_html(directory: str | os.PathLike) -> Path:
    """Write ``DIRECTORY/index.html``; returns its path."""
    dst = Path(directory) / "index.html"
    text = render_bench_html(directory)
    with atomic_file(dst, mode=0o644) as tmp:
        tmp.write_text(text)
    return dst
