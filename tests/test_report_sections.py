"""Typed parity-report sections, and every section of every format showing content and a verdict.

Expected values are the rules of ``parity.report.check_section`` (``ok`` a bool, a non-empty
``summary``, flat ``rows``, non-negative ``seconds``) applied to sections made up here; the cost
numbers are the durations recorded in each test (section seconds = a test's time shared equally
among the sections it added).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from unirep_port.parity.report import Report, check_section

ROOT = Path(__file__).resolve().parents[1]


def test_a_section_without_a_verdict_is_an_error_naming_it():
    with pytest.raises(ValueError, match="section 'drift alarm 64' has no verdict"):
        Report().add("drift alarm 64", {"summary": "numbers only", "max_abs": {"hs": 1e-7}})


def test_ok_must_be_a_real_bool():
    """A NumPy bool is converted; the float a NumPy bool became under ``default=float`` (the
    evotune sections' ``"ok": 1.0``) is refused, naming the section."""
    sec = check_section("s", {"ok": np.bool_(True), "summary": "x"})
    assert sec["ok"] is True and type(sec["ok"]) is bool
    with pytest.raises(TypeError, match="section 'evotune_gradients_64': 'ok' must be a bool"):
        check_section("evotune_gradients_64", {"ok": 1.0, "summary": "x"})
    with pytest.raises(TypeError, match="'ok' must be a bool"):
        check_section("s", {"ok": None, "summary": "x"})


@pytest.mark.parametrize("summary", [None, "", "   ", 3])
def test_summary_must_be_non_empty_text(summary):
    with pytest.raises(ValueError, match="section 'port vs golden 64' needs a non-empty"):
        check_section("port vs golden 64", {"ok": True, "summary": summary})


def test_rows_are_flat_and_numpy_scalars_become_python():
    sec = check_section(
        "s", {"ok": True, "summary": "x", "rows": [{"a": np.float32(0.5), "b": np.int64(3)}]}
    )
    assert sec["rows"] == [{"a": 0.5, "b": 3}] and type(sec["rows"][0]["b"]) is int
    with pytest.raises(TypeError, match=r"section 's' rows\[1\]\['m'\]: dict is not a flat"):
        check_section("s", {"ok": True, "summary": "x", "rows": [{"m": 1}, {"m": {"hs": 1}}]})
    with pytest.raises(TypeError, match="'seconds' must be a non-negative number"):
        check_section("s", {"ok": True, "summary": "x", "seconds": -1.0})
    with pytest.raises(ValueError, match="reserved"):
        check_section("cost", {"ok": True, "summary": "x"})


def _report_with_costs() -> Report:
    """Three sections: two from one test (4 s, shared), one from a fixture and test (1 + 2 s),
    one with its own seconds and no test; a failing one so both verdicts show."""
    r = Report()
    r.current_test = "t.py::test_a"
    r.add("alpha", {"ok": True, "summary": "alpha holds", "rows": [{"k": 1, "v": 0.25}]})
    r.add("beta", {"ok": np.bool_(False), "summary": "beta fails: 3 > 2"})
    r.record_duration("t.py::test_a", 4.0)
    r.current_test = "t.py::test_b"
    r.add("gamma", {"ok": True, "summary": "gamma holds", "evidence": {"hs": 1e-6}})
    r.record_duration("t.py::test_b", 1.0)  # setup (the fixture that added it)
    r.record_duration("t.py::test_b", 2.0)  # call
    r.current_test = None
    r.add("delta", {"ok": True, "summary": "delta, timed by itself", "seconds": 0.5})
    return r


def test_each_section_costs_the_time_of_the_tests_that_added_it():
    r = _report_with_costs()
    assert r.section_seconds() == {"alpha": 2.0, "beta": 2.0, "gamma": 3.0, "delta": 0.5}
    cost = r.cost()
    assert cost["total_seconds"] == 7.5 and cost["all_tests_seconds"] == 7.0
    d = r.to_dict()
    assert d["sections"] == ["alpha", "beta", "gamma", "delta"]
    assert d["gamma"]["seconds"] == 3.0 and d["beta"]["ok"] is False


def test_each_section_has_the_compiles_of_the_tests_that_added_it():
    """Compile counts and seconds are shared among a test's sections like its time; a section
    added by no measured test has none, and the markdown says "-" for it."""
    r = _report_with_costs()
    r.record_compiles("t.py::test_a", 10, 3.0)
    r.record_compiles("t.py::test_b", 4, 1.5)
    r.record_compiles("t.py::test_b", 2, 0.5)  # a second record adds up
    comp = r.section_compiles()
    assert comp == {"alpha": (5, 1.5), "beta": (5, 1.5), "gamma": (6, 2.0), "delta": None}
    rows = {row["section"]: row for row in r.cost()["rows"]}
    assert rows["gamma"]["compiles"] == 6 and "compiles" not in rows["delta"]
    md = r.markdown()
    assert "| gamma | 3.0 | 6 | 2.0 |" in md and "| delta | 0.5 | - | - |" in md


class _Cards(HTMLParser):
    """The report page's section cards: id -> (h3 text, first paragraph's text)."""

    def __init__(self):
        super().__init__()
        self.cards: dict[str, list[str]] = {}
        self._card = None
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "card" in (a.get("class") or ""):
            self._card = a.get("id")
            self.cards[self._card] = ["", ""]
        elif self._card and tag in ("h3", "p") and self._in is None:
            if tag == "h3" or not self.cards[self._card][1]:
                self._in = tag

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None
        elif tag == "section":
            self._card = None

    def handle_data(self, data):
        if self._card and self._in:
            self.cards[self._card][0 if self._in == "h3" else 1] += data


def test_every_section_of_every_format_shows_content_and_its_verdict(tmp_path):
    r = _report_with_costs()
    json_path, md_path, html_path = r.write(tmp_path)
    data = json.loads(json_path.read_text())
    want = {"alpha": "PASS", "beta": "FAIL", "gamma": "PASS", "delta": "PASS"}
    for name, v in want.items():  # JSON: a real bool and a summary
        assert data[name]["ok"] is (v == "PASS") and data[name]["summary"].strip()
    md = md_path.read_text()
    blocks = re.split(r"^## ", md, flags=re.M)[1:]
    heads = {b.splitlines()[0]: b for b in blocks}
    for name, v in want.items():  # markdown: "## name: VERDICT" and text under it
        block = heads[f"{name}: {v}"]
        assert block.split("\n", 1)[1].strip(), f"empty heading {name!r}"
    assert "| total | 7.5 |" in md
    parser = _Cards()
    parser.feed(html_path.read_text())
    for name, v in want.items():  # HTML: each section's card, its verdict and its summary
        card = parser.cards["s-" + name]
        assert v in card[0] and name in card[0] and card[1].strip(), (name, card)
    assert "cost" in parser.cards and "machine" in parser.cards


def test_the_report_files_are_readable_by_others(tmp_path):
    """JSON, markdown and HTML are 0644 under the usual umask 022, so a CI artifact or a shared
    folder serves them (issue 29: they were written 0600)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        paths = _report_with_costs().write(tmp_path)
    finally:
        os.umask(old)
    assert {p.suffix: stat.S_IMODE(p.stat().st_mode) for p in paths} == {
        ".json": 0o644,
        ".md": 0o644,
        ".html": 0o644,
    }


def test_a_summary_holding_a_python_dict_repr_is_refused():
    """The verdict table's "key numbers" column shows the summary: a ``{'hs': {...}}`` repr
    there is unreadable (issue 29), so a section may not carry one; :func:`report.plain` writes
    such numbers as text."""
    from unirep_port.parity.report import plain

    per_seq = {"hs": {"max_abs": 6.172e-05, "fails": 0}, "h_avg": {"max_abs": 3.4e-06, "fails": 0}}
    with pytest.raises(ValueError, match="real proteins 64.*dict"):
        check_section("real proteins 64", {"ok": True, "summary": f"PASS {per_seq}."})
    text = plain(per_seq)
    assert text == "hs: max_abs 6.17e-05, fails 0; h_avg: max_abs 3.4e-06, fails 0"
    assert check_section("real proteins 64", {"ok": True, "summary": f"PASS: {text}."})["ok"]


def test_markdown_and_page_are_rendered_from_the_json_by_one_template_set(tmp_path):
    """The markdown comes from the report's JSON through the same templates and view as the HTML
    page (issue 29: it was built by hand beside the Jinja page). Expected: the markdown a report
    writes is the one its written JSON renders; each committed results folder's markdown (written
    by the parity runs) is the one its committed JSON renders; the markdown shows text as it is
    while the page escapes it."""
    from unirep_port.parity.render import render_markdown

    r = _report_with_costs()
    r.record_compiles("t.py::test_a", 10, 3.0)
    r.compiles = {"requests": 12, "cache_hits": 3, "cache_dir": "/c", "compiles": 9, "seconds": 4.0}
    json_path, md_path, html_path = r.write(tmp_path)
    md = md_path.read_text()
    assert render_markdown(json.loads(json_path.read_text())) == md == r.markdown()
    assert "beta fails: 3 > 2" in md and "beta fails: 3 &gt; 2" in html_path.read_text()
    committed = sorted(ROOT.glob("parity_tests/results/**/parity-report.json"))
    assert committed, "no committed parity report"
    for path in committed:
        want = path.with_suffix(".md").read_text()
        assert render_markdown(json.loads(path.read_text())) == want, path
