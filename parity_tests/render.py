"""The parity report's pages, ``parity-report.md`` and ``parity-report.html``, both rendered from
``parity-report.json`` by one set of Jinja2 templates (``templates/parity.{md,html}.j2``).

Both take the same view of the JSON (:func:`_sections`, :func:`_cost_rows`); the markdown is the
text a terminal or a pull request shows, the HTML page its illustrated form. In the page, the
verdict and every section's own verdict with its key numbers come first, then the evidence: per
size the parity table and figures (``report_figures``, inlined as base64 PNG), each section's
rows, its matrix where it has one (planted-bug kills, portability) and its remaining numbers, the
cost of each verdict, versions and the CPU. Everything comes from the JSON (and the traces saved
beside it), so ``unirep-port report RESULTS_DIR`` renders a CI artifact again.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

from unirep_port.atomic import atomic_file

_SCALAR = (str, int, float, bool, type(None))
_META = {"ok", "summary", "rows", "seconds", "separate_verdict"}
NO_SUMMARY = "(no summary: this JSON was written before report sections were typed)"


def environment(package: str = "unirep_port.parity"):
    """The Jinja2 environment of the report templates (shared by the benchmark page)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        # HTML templates escape what they show; the markdown ones write the text as it is.
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["table_keys"] = lambda rows: list(dict.fromkeys(k for r in rows for k in r))
    env.filters["md"] = _md
    env.filters["fixed"] = lambda v, digits=1: "-" if v is None else f"{v:.{digits}f}"
    env.filters["ill"] = _ill
    env.globals["compiles_line"] = compiles_line
    return env


def _num(v) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.3g}"


def _md(v) -> str:
    """A markdown table cell: floats to four significant figures, anything else as ``str``."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _ill(ill_from) -> str:
    """``{'hs': 84, 'logits': None}`` -> ``hs 84, logits -``."""
    if not isinstance(ill_from, dict) or not ill_from:
        return "-"
    return ", ".join(f"{k} {'-' if v is None else v}" for k, v in ill_from.items())


def compiles_line(c: dict) -> str:
    """One sentence on the session's XLA executables (the report JSON's ``cost.compiles``)."""
    source = (
        f"{c['cache_hits']} read from the persistent compile cache {c['cache_dir']}"
        if c.get("cache_dir")
        else "no persistent compile cache"
    )
    return (
        f"XLA executables of this process: {c['requests']} requested ({source}), "
        f"{c['compiles']} compiled, {c['seconds']:.1f} s in all."
    )


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def section_names(data: dict) -> list[str]:
    """The sections of a report JSON: its ``sections`` list, or (a JSON written before that
    list existed) every top-level dict that carries an ``ok``."""
    if isinstance(data.get("sections"), list):
        return list(data["sections"])
    skip = {"versions", "cpu", "cost"}
    return [k for k, v in data.items() if isinstance(v, dict) and "ok" in v and k not in skip]


def verdict_of(value) -> bool:
    """A section's ``ok`` as read from JSON: a bool; ``1.0``/``0.0`` in a JSON written before
    sections were typed (a NumPy bool serialised as a float) count as True/False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return False


def _anchor(name: str) -> str:
    return "s-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _evidence(sec: dict) -> list[tuple[str, list[dict]]]:
    """A section's numbers other than its rows, as small tables: its flat fields; its
    dicts of numbers side by side (e.g. ``max_abs`` and ``max_ratio`` per output); its dicts of
    dicts as one row each (e.g. sign tests)."""
    flat = {k: v for k, v in sec.items() if k not in _META and isinstance(v, _SCALAR)}
    out = [("fields", [flat])] if flat else []
    side: dict[str, dict] = {}
    for k, v in sec.items():
        if k in _META or not isinstance(v, dict) or not v:
            continue
        if all(isinstance(x, _SCALAR) for x in v.values()):
            for inner, x in v.items():
                side.setdefault(inner, {"key": inner})[k] = x
        elif all(isinstance(x, dict) for x in v.values()):
            rows = [
                {k: name, **{a: b for a, b in x.items() if isinstance(b, _SCALAR)}}
                for name, x in v.items()
            ]
            if any(len(r) > 1 for r in rows):
                out.append((k, rows))
    if side:
        out.insert(1 if flat else 0, ("per key", list(side.values())))
    return out


def _matrix(rows: list[dict]) -> dict | None:
    """A (row label x size) verdict matrix for kill-rate style or portability style rows."""
    if not rows:
        return None
    for label, value in (("bug", "caught"), ("setting", "ok"), ("planted", "rejected")):
        if all({label, "size", value} <= set(r) for r in rows):
            cols = sorted({r["size"] for r in rows}, reverse=True)
            return {
                "row_label": label,
                "cols": cols,
                "rows": list(dict.fromkeys(r[label] for r in rows)),
                "cells": {(r[label], r["size"]): r[value] for r in rows},
            }
    return None


def _parity_rows(r: dict) -> tuple[list[dict], list[dict]]:
    stats = [
        {
            "output": s["output"],
            "tolerance": s["tolerance"],
            "max abs": s["max_abs"],
            "median abs": s["median_abs"],
            "fails": s["n_fail"],
            "f32-conditioning": s.get("n_excused", 0),
            "worst at": s["worst"],
            "first failure": s.get("first_fail") or "-",
        }
        for s in r.get("stats", [])
    ]
    cond = [
        {
            "sequence": k,
            "steps ok": v.get("step_ok"),
            "step err / bound": v.get("step_bound_ratio"),
            "TF from f64": v.get("max_ref_drift"),
            "members from f64": v.get("max_member_drift"),
            "port from f64": v.get("max_port_drift"),
            "factor": v.get("factor"),
        }
        for k, v in r.get("conditioning", {}).items()
    ]
    return stats, cond


def _sections(data: dict) -> list[dict]:
    """Each section of report JSON ``data`` as both pages show it: name, verdict, whether it is a
    separate verdict, summary, rows and the seconds it cost (its own, or the cost table's)."""
    cost = {r["section"]: r["seconds"] for r in (data.get("cost") or {}).get("rows", [])}
    out = []
    for name in section_names(data):
        sec = data[name]
        summary = sec.get("summary") if isinstance(sec.get("summary"), str) else ""
        seconds = sec.get("seconds", cost.get(name))
        out.append(
            {
                "name": name,
                "ok": verdict_of(sec.get("ok")),
                "separate": bool(sec.get("separate_verdict")),
                "summary": summary.strip() or NO_SUMMARY,
                "rows": sec.get("rows") or [],
                "seconds": seconds if isinstance(seconds, int | float) else None,
            }
        )
    return out


def _cost_rows(data: dict) -> list[dict]:
    """The cost table: seconds per section (with the XLA compiles and their seconds where the
    JSON has them) and a total row; empty for a JSON written before costs were kept."""
    rows = []
    for r in (data.get("cost") or {}).get("rows", []):
        row = {"section": r["section"], "seconds": r["seconds"]}
        if "compiles" in r:  # reports from before the compile columns lack them
            row["compiled"], row["compile s"] = r["compiles"], r["compile_seconds"]
        rows.append(row)
    if rows:
        total = (data.get("cost") or {}).get("total_seconds")
        total_row = {"section": "total", "seconds": total}
        if any("compiled" in r for r in rows):
            total_row["compiled"] = sum(r.get("compiled", 0) for r in rows)
            total_row["compile s"] = sum(r.get("compile s", 0.0) for r in rows)
        rows.append(total_row)
    return rows


def render_markdown(data: dict) -> str:
    """``parity-report.md`` for report JSON ``data``: the verdict, the per-size parity tables,
    each section with its rows and cost, and the cost table."""
    text = (
        environment()
        .get_template("parity.md.j2")
        .render(
            ok=data.get("ok") is True,
            failed_tests=data.get("failed_tests", []),
            parity=data.get("parity", []),
            sections=_sections(data),
            cost_rows=_cost_rows(data),
            compiles=(data.get("cost") or {}).get("compiles"),
        )
    )
    return text.rstrip("\n") + "\n"  # each block ends in a blank line; the file in one newline


def render_html(data: dict, directory: str | os.PathLike | None = None) -> str:
    """The page for report JSON ``data``; ``directory`` is where traces may lie beside it."""
    from unirep_port.parity import report_figures

    directory = Path(directory) if directory is not None else None
    figs = report_figures.all_figures(data, directory)

    def uris(group: str, match=lambda title: True) -> list:
        return [(t, c, data_uri(p)) for t, c, p in figs.get(group, []) if match(t)]

    parity = []
    for r in data.get("parity", []):
        stats, cond = _parity_rows(r)
        parity.append(
            {
                **r,
                "stat_rows": stats,
                "cond_rows": cond,
                "figures": uris("error_vs_length", lambda t, s=r["size"]: t.endswith(f", {s}")),
            }
        )
    sections = []
    for sec in _sections(data):
        name = sec["name"]
        if name.startswith("real proteins"):
            sec_figs = uris("real_proteins", lambda t, n=name: t.endswith(n))
        elif name == "fast mode certificate":
            sec_figs = uris("fastmode")
        else:
            sec_figs = []
        sections.append(
            {
                **sec,
                "anchor": _anchor(name),
                "matrix": _matrix(sec["rows"]),
                "evidence": _evidence(data[name]),
                "figures": sec_figs,
            }
        )
    return (
        environment()
        .get_template("parity.html.j2")
        .render(
            title="UniRep port parity report",
            ok=data.get("ok") is True,
            failed_tests=data.get("failed_tests", []),
            parity=parity,
            sections=sections,
            extra_figures=uris("error_vs_position") + uris("step_over_bound"),
            cost_rows=_cost_rows(data),
            versions=data.get("versions", {}),
            cpu=data.get("cpu"),
        )
    )


def rerender(results_dir: str | os.PathLike) -> Path:
    """``parity-report.html`` again from ``RESULTS_DIR/parity-report.json``; returns its path."""
    directory = Path(results_dir)
    src = directory / "parity-report.json"
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no parity report JSON in {directory}")
    try:
        data = json.loads(src.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{src}: not valid JSON ({exc})") from exc
    dst = directory / "parity-report.html"
    with atomic_file(dst, mode=0o644) as tmp:
        tmp.write_text(render_html(data, directory))
    return dst
