"""A verdict as one self-contained HTML page: the verdict and per-output table first, then figures.

The figures are inline SVG drawn here (no plotting library, no network): per output with a time
axis, the candidate's and the TF reference's drift / bound per position (worst over inputs; the
bound is the line at 1), and the taps' drift / bound in program order.
"""

from __future__ import annotations

import html
import math

W, H, PAD = 640, 200, 40


def _y(v: float, top: float) -> float:
    """Log scale from 1e-4 to ``top`` (at least 10) onto the plot's height."""
    lo, hi = -4.0, max(1.0, math.log10(max(top, 10.0)))
    v = min(max(math.log10(max(v, 1e-4)), lo), hi)
    return PAD / 2 + (H - PAD) * (hi - v) / (hi - lo)


def _line(values: list[float], colour: str, top: float) -> str:
    n = max(len(values) - 1, 1)
    pts = " ".join(
        f"{PAD + (W - 1.5 * PAD) * i / n:.1f},{_y(v, top):.1f}" for i, v in enumerate(values)
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>'


def _axes(top: float, xlabel: str) -> str:
    y1 = _y(1.0, top)
    ticks = "".join(
        f'<text x="{PAD - 4}" y="{_y(10.0**e, top) + 4:.1f}" text-anchor="end" '
        f'font-size="10">1e{e}</text>'
        for e in range(-4, int(math.log10(max(top, 10.0))) + 1, 2)
    )
    return (
        f'<line x1="{PAD}" x2="{W - PAD / 2}" y1="{y1:.1f}" y2="{y1:.1f}" stroke="#c00" '
        f'stroke-dasharray="4 3"/><text x="{W - PAD / 2}" y="{y1 - 4:.1f}" text-anchor="end" '
        f'font-size="10" fill="#c00">bound</text>{ticks}'
        f'<text x="{W / 2}" y="{H - 4}" text-anchor="middle" font-size="11">{xlabel}</text>'
    )


def _position_figure(leaf) -> str:
    top = max([*leaf.ratio_by_position, *leaf.reference_ratio_by_position, 1.0])
    return (
        f'<figure><svg width="{W}" height="{H}" role="img" aria-label="drift over bound per '
        f'position of {html.escape(leaf.output)}">{_axes(top, "position")}'
        f"{_line(leaf.ratio_by_position, '#1f5fbf', top)}"
        f"{_line(leaf.reference_ratio_by_position, '#999', top)}</svg>"
        f"<figcaption>{html.escape(leaf.output)}: drift from float64 / bound per position "
        "(blue: candidate, grey: TF reference; worst over inputs; log scale)</figcaption></figure>"
    )


def _tap_figure(taps) -> str:
    top = max([t.max_ratio for t in taps] + [1.0])
    bw = (W - 1.5 * PAD) / max(len(taps), 1)
    bars = "".join(
        f'<rect x="{PAD + i * bw + 2:.1f}" y="{_y(t.max_ratio, top):.1f}" width="{bw - 4:.1f}" '
        f'height="{max(_y(1e-4, top) - _y(t.max_ratio, top), 1):.1f}" '
        f'fill="{"#c00" if t.status != "ok" else "#1f5fbf"}"><title>{html.escape(t.name)}: '
        f"{t.max_ratio:.3g} ({t.status})</title></rect>"
        for i, t in enumerate(taps)
    )
    return (
        f'<figure><svg width="{W}" height="{H}" role="img" aria-label="taps">'
        f"{_axes(top, 'taps in program order')}{bars}</svg><figcaption>taps: drift / bound "
        "(red: out of bound per place or in bulk)</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _g(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _leaf_table(verdict) -> str:
    return _table(
        ["output", "shape", "drift / bound", "reference / bound", "bulk: drift / witnesses",
         "bulk p", "power (smallest relative change caught)", "worst input", "worst position",
         "ok"],
        [[html.escape(r.output), r.shape, _g(r.max_ratio), _g(r.reference_ratio),
          _g(r.bulk.get("ratio")), _g(r.bulk.get("p_value")),
          "-" if r.power is None else f"{r.power:.2g} ({r.power_caught_by})", str(r.worst_input),
          "-" if r.worst_position is None else str(r.worst_position), "yes" if r.ok else "NO"]
         for r in verdict.leaves],
    )  # fmt: skip


def _tap_section(verdict) -> str:
    if not verdict.taps:
        return ""
    rows = [[html.escape(t.name), f"<code>{html.escape(t.tensor)}</code>", t.shape,
             _g(t.max_ratio), _g(t.reference_ratio), _g(t.bulk_ratio), html.escape(t.status)]
            for t in verdict.taps]  # fmt: skip
    header = ["tap", "tensor", "shape", "drift / bound", "reference / bound",
              "bulk: drift / witnesses", "status"]  # fmt: skip
    return "<h2>Taps</h2>" + _table(header, rows) + _tap_figure(verdict.taps)


def verdict_page(verdict, title: str) -> str:
    """The page (a string of HTML)."""
    word = "PASS" if verdict.ok else "FAIL"
    leaves, taps = _leaf_table(verdict), _tap_section(verdict)
    figures = "".join(_position_figure(r) for r in verdict.leaves if r.ratio_by_position)
    items = "".join(f"<li>{html.escape(x)}</li>" for x in [*verdict.failures(), *verdict.notes])
    power = (
        "not measured (the verdict fails already)"
        if verdict.power is None
        else f"{verdict.power:.2g}"
    )
    colour = "#070" if verdict.ok else "#c00"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}: {word}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
font-size:13px}}.verdict{{font-size:1.6em;font-weight:bold;color:{colour}}}
figure{{margin:1em 0}}figcaption{{font-size:12px;color:#555}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict">{word}</p>
<p>{verdict.n_witnesses} witnesses, {verdict.n_places} places, alpha {verdict.alpha:g} (tail
factor {verdict.tail_factor:.3g}), bulk alpha {verdict.alpha_bulk:g}, oracle
{html.escape(verdict.oracle)}. Power: the smallest relative change of the candidate this verdict
catches is {power}.</p>
{leaves}
<ul>{items}</ul>
{taps}
<h2>Drift over bound, per position</h2>
{figures or "<p>No output has a time axis.</p>"}
</body></html>
"""
