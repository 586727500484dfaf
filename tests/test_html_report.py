"""The HTML pages: rendered from the committed results JSON, self-contained, and read in a browser.

Inputs: the committed ``parity_tests/results/parity-report.json`` and traces (the last full
parity run) and the JSON files of ``benchmarks/results/``, copied to a temporary folder, so
``unirep-port report`` renders a results folder as a CI artifact would be. The browser test runs
Debian's ``chromium`` headless (``apt-get install chromium``) and skips where it is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from unirep_port.cli import main
from unirep_port.parity.render import section_names

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "parity_tests" / "results"
BENCH = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A copy of the committed results folder, rendered by ``unirep-port report``."""
    d = tmp_path_factory.mktemp("results")
    for p in [RESULTS / "parity-report.json", *RESULTS.glob("parity-trace-*.npz")]:
        shutil.copy(p, d)
    assert main(["report", str(d)]) == 0
    return d / "parity-report.html"


def test_page_is_self_contained_with_every_section_and_inline_figures(rendered):
    html = rendered.read_text()
    data = json.loads((rendered.parent / "parity-report.json").read_text())
    # nothing fetched from anywhere: every src/href is inline data or an anchor
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert ref.startswith(("data:image/png;base64,", "#")), ref
    assert html.count('src="data:image/png;base64,') >= len(data["parity"])  # one per size+
    for name in section_names(data):
        card = re.search(rf'<section class="card" id="s-[^"]*">\s*<h3>{re.escape(name)}: ', html)
        assert card, f"no card for section {name!r}"
    assert "Verdict: PASS" in html  # the committed run's verdict (data["ok"] is True)


def test_report_command_names_a_folder_without_json(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert str(tmp_path / "parity-report.json") in capsys.readouterr().err


def test_bench_page_from_the_results_folder(tmp_path):
    for p in BENCH.glob("*.json"):
        shutil.copy(p, tmp_path)
    assert main(["report", "--bench", str(tmp_path)]) == 0
    html = (tmp_path / "index.html").read_text()
    targets = json.loads((BENCH / "targets-cpu.json").read_text())
    for key, v in targets.items():  # every target of targets-cpu.json, with its verdict
        if isinstance(v, dict) and "target" in v:
            row = re.search(rf"<td>{key}</td><td><span class=\"badge (PASS|FAIL)\"", html)
            assert row and row.group(1) == ("PASS" if v["ok"] else "FAIL"), key
    assert 'src="data:image/png;base64,' in html


def _marks(url: str) -> dict:
    dom = _browser("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = _chromium()
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [*base, "--virtual-time-budget=5000", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(
    _chromium() is None,
    reason="needs headless Chromium: apt-get install chromium (Debian) to run the browser test",
)
def test_in_headless_chromium_every_section_is_shown_and_figures_load(rendered):
    """After load, the page's own script marks how many images decoded and how many section
    cards have a size, a heading and text; Chromium's DOM dump carries those marks."""
    url = rendered.as_uri()
    marks = _marks(url)
    assert int(marks["images"]) > 0 and marks["images-loaded"] == marks["images"], marks
    n_cards = rendered.read_text().count('<section class="card"')
    assert int(marks["sections"]) == n_cards, marks
    assert marks["sections-shown"] == marks["sections"], f"hidden: {marks['sections-hidden']}"
    shot = rendered.parent / "parity-report-screenshot.png"
    out = _browser(f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert out.returncode == 0 and shot.stat().st_size > 10_000, out.stderr[-2000:]


@pytest.mark.skipif(_chromium() is None, reason="needs headless Chromium: apt-get install chromium")
def test_the_browser_check_can_fail(rendered, tmp_path):
    """Negative control: a corrupt figure and a hidden section are both seen by the marks."""
    html = rendered.read_text()
    html = html.replace('src="data:image/png;base64,', 'src="data:image/png;base64,AAAA', 1)
    html = html.replace(
        '<section class="card" id="cost">', '<section class="card" id="cost" style="display:none">'
    )
    bad = tmp_path / "broken.html"
    bad.write_text(html)
    marks = _marks(bad.as_uri())
    assert int(marks["images-loaded"]) == int(marks["images"]) - 1, marks
    assert marks["sections-hidden"] == "cost", marks


def test_figures_per_size_and_both_trace_formats(tmp_path):
    """One error-vs-length figure per size in the committed JSON; the position figure from a
    trace with only TF and port (older runs) and from one with the float64 oracle and members
    (``parity.run.size_parity`` now); synthetic traces of 5 positions x 3 units."""
    from unirep_port.parity import report_figures

    data = json.loads((RESULTS / "parity-report.json").read_text())
    figs = report_figures.error_vs_length(data)
    assert [t for t, _, _ in figs] == [f"Error vs length, {r['size']}" for r in data["parity"]]
    rng = np.random.default_rng(0)
    h = rng.standard_normal((5, 3)).astype(np.float32)
    np.savez(tmp_path / "parity-trace-64.npz", tf_h=h, jax_h=h + 1e-7)
    np.savez(
        tmp_path / "parity-trace-256.npz",
        tf_h=h,
        jax_h=h,
        f64_h=h.astype(np.float64),
        member_h=np.stack([h, h]),
    )
    ((title, caption, png),) = report_figures.error_vs_position(tmp_path)
    assert png.startswith(b"\x89PNG") and "float64" in caption
