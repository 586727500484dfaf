"""The parity report: ``parity-report.json`` (machine-readable), ``.md`` and ``.html`` (human).

Every section of the report is typed (:func:`check_section`): a verdict ``ok`` (a real bool), a
non-empty ``summary``, optional ``rows`` (flat dicts) and ``seconds`` (what computing the verdict
cost; the parity suite's conftest fills it from the pytest durations of the tests that added the
section). Any further keys are evidence kept in the JSON. The markdown and the HTML page are both
rendered from the JSON alone, by one set of templates (``unirep_port.parity.render``), so a
results folder can be rendered again elsewhere.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.machine import describe
from unirep_port.parity.compare import ParityResult

# Top-level JSON keys that are not sections (a section may not take one of these names).
RESERVED = {
    "ok",
    "versions",
    "cpu",
    "parity",
    "failed_tests",
    "error_vs_length",
    "sections",
    "cost",
}
_FLAT = (str, int, float, bool, type(None))


def _versions() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    from unirep_port.tfstart import quiet_import

    for mod in ("numpy", "jax", "jaxlib", "tensorflow"):
        try:
            out[mod] = quiet_import(mod).__version__
        except Exception:  # a missing library is just absent from the report
            pass
    return out


def cpu_info() -> dict:
    """The CPU model, core count and instruction-set flags (``unirep_port.machine.describe``)."""
    return describe()


def _flat(value, where: str):
    """A JSON scalar, NumPy scalars converted; anything nested is refused, naming ``where``."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, _FLAT):
        raise TypeError(f"{where}: {type(value).__name__} is not a flat value (str/number/bool)")
    return value


def check_section(name: str, data: Mapping) -> dict:
    """``data`` as a typed report section, or an error naming section ``name`` and the field.

    ``ok`` must be a bool (a NumPy bool is converted; a number such as ``1.0`` is refused),
    ``summary`` a non-empty str, ``rows`` (optional) a list of flat dicts, ``seconds`` (optional)
    a non-negative number.
    """
    if name in RESERVED:
        raise ValueError(f"section {name!r}: the name is reserved for the report itself")
    if not isinstance(data, Mapping):
        raise TypeError(f"section {name!r}: expected a dict, got {type(data).__name__}")
    if "ok" not in data:
        raise ValueError(f"section {name!r} has no verdict: set 'ok' (True or False)")
    ok = data["ok"]
    if isinstance(ok, np.bool_):
        ok = bool(ok)
    if not isinstance(ok, bool):
        raise TypeError(f"section {name!r}: 'ok' must be a bool, got {type(ok).__name__} {ok!r}")
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError(f"section {name!r} needs a non-empty 'summary' (str), got {summary!r}")
    if (found := _DICT_REPR.search(summary)) is not None:
        raise ValueError(
            f"section {name!r}: the summary holds a Python dict repr ({found.group()}...), which "
            "the verdict table would show as is; write its numbers as text (report.plain)"
        )
    out = {**data, "ok": ok, "summary": summary}
    if data.get("rows") is not None:
        rows = data["rows"]
        if not isinstance(rows, list | tuple):
            raise TypeError(f"section {name!r}: 'rows' must be a list of dicts")
        clean = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"section {name!r}: rows[{i}] is not a dict")
            clean.append(
                {str(k): _flat(v, f"section {name!r} rows[{i}][{k!r}]") for k, v in row.items()}
            )
        out["rows"] = clean
    if data.get("seconds") is not None:
        sec = _flat(data["seconds"], f"section {name!r} 'seconds'")
        if isinstance(sec, bool) or not isinstance(sec, int | float) or sec < 0:
            raise TypeError(f"section {name!r}: 'seconds' must be a non-negative number")
        out["seconds"] = float(sec)
    return out


# ``{'hs': ...`` / ``{"hs": ...``: a dict formatted into a sentence with str() or an f-string.
_DICT_REPR = re.compile(r"\{['\"][^'\"\n]{0,80}['\"]: ")


def plain(value) -> str:
    """Numbers as a reader writes them: nested dicts as ``key: inner k v, ...; key: ...``,
    floats to three significant figures (``{'hs': {'max_abs': 6.172e-05, 'fails': 0}}`` ->
    ``hs: max_abs 6.17e-05, fails 0``). For summaries, which may not hold a dict repr."""
    if isinstance(value, Mapping):
        inner = all(not isinstance(v, Mapping) for v in value.values())
        if inner:
            return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _json_default(value):
    """NumPy values as their JSON equivalents (a NumPy bool stays a bool, not 1.0)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Report:
    """Collects sections from the parity run and writes them out at the end."""

    def __init__(self) -> None:
        self.parity: list[ParityResult] = []
        self.sections: dict[str, dict] = {}
        self.failed_tests: list[str] = []
        self.current_test: str | None = None  # set by the suite's conftest while a test runs
        self.added_by: dict[str, list[str]] = {}  # section -> nodeids of the tests that added it
        self.durations: dict[str, float] = {}  # nodeid -> seconds (setup + call + teardown)
        # the session's XLA executables: requests, persistent-cache hits, real compiles, seconds
        self.compiles: dict | None = None
        # nodeid -> (XLA compiles, seconds of executable requests: compiles and cache reads)
        self.compile_by_test: dict[str, tuple[int, float]] = {}

    def record_duration(self, nodeid: str, seconds: float) -> None:
        self.durations[nodeid] = self.durations.get(nodeid, 0.0) + float(seconds)

    def record_compiles(self, nodeid: str, compiles: int, seconds: float) -> None:
        """XLA work of a test (``jax_port.compile_cache`` counters before and after it)."""
        n, s = self.compile_by_test.get(nodeid, (0, 0.0))
        self.compile_by_test[nodeid] = (n + int(compiles), s + float(seconds))

    def _sections_per_test(self) -> dict[str, int]:
        """nodeid -> how many sections that test added (its costs are shared among them)."""
        n_added: dict[str, int] = {}
        for ids in self.added_by.values():
            for t in set(ids):
                n_added[t] = n_added.get(t, 0) + 1
        return n_added

    def section_seconds(self) -> dict[str, float | None]:
        """Seconds each section cost: its own ``seconds`` if it set one, else the durations of
        the tests that added it, a test's time shared equally among the sections it added."""
        n_added = self._sections_per_test()
        out: dict[str, float | None] = {}
        for name, data in self.sections.items():
            if data.get("seconds") is not None:
                out[name] = float(data["seconds"])
                continue
            ids = set(self.added_by.get(name, ()))
            known = [self.durations[t] / n_added[t] for t in ids if t in self.durations]
            out[name] = sum(known) if known else None
        return out

    def section_compiles(self) -> dict[str, tuple[int, float] | None]:
        """XLA compiles and request seconds of the tests that added each section, shared
        equally among the sections a test added (as :meth:`section_seconds`)."""
        n_added = self._sections_per_test()
        out: dict[str, tuple[int, float] | None] = {}
        for name in self.sections:
            ids = [t for t in set(self.added_by.get(name, ())) if t in self.compile_by_test]
            if not ids:
                out[name] = None
                continue
            n = sum(self.compile_by_test[t][0] / n_added[t] for t in ids)
            s = sum(self.compile_by_test[t][1] / n_added[t] for t in ids)
            out[name] = (round(n), s)
        return out

    def cost(self) -> dict:
        """The verdicts' own cost: seconds per section (and of them, the XLA compiles and
        executable requests), their total, and all timed tests."""
        secs = self.section_seconds()
        comp = self.section_compiles()
        rows = []
        for k, v in secs.items():
            row = {"section": k, "seconds": v}
            if comp.get(k) is not None:
                row["compiles"], row["compile_seconds"] = comp[k]
            rows.append(row)
        return {
            "rows": rows,
            "total_seconds": sum(v for v in secs.values() if v is not None),
            "all_tests_seconds": sum(self.durations.values()),
            "compiles": self.compiles,
        }

    def add_failed_test(self, nodeid: str, when: str = "call") -> None:
        label = nodeid if when == "call" else f"{nodeid} (in {when})"
        if label not in self.failed_tests:
            self.failed_tests.append(label)

    def add_parity(self, result: ParityResult) -> None:
        self.parity = [r for r in self.parity if r.size != result.size] + [result]

    def add(self, name: str, data: Mapping) -> None:
        """Add (or replace) section ``name``; it must be typed (:func:`check_section`)."""
        self.sections[name] = check_section(name, data)
        if self.current_test is not None:
            ids = self.added_by.setdefault(name, [])
            if self.current_test not in ids:
                ids.append(self.current_test)

    @property
    def ok(self) -> bool:
        """The float32 verdict: every test, every parity result, every section but those that
        carry a verdict of their own (``"separate_verdict": True``, e.g. the fast mode's)."""
        return (
            not self.failed_tests
            and all(r.ok for r in self.parity)
            and all(s["ok"] for s in self.sections.values() if not s.get("separate_verdict"))
        )

    def to_dict(self) -> dict:
        return {"ok": self.ok, "versions": _versions(), "cpu": cpu_info(), **self._content()}

    def _content(self) -> dict:
        """The report's JSON but the verdict and the machine (versions and CPU)."""
        secs = self.section_seconds()
        return {
            "parity": [r.to_dict() for r in sorted(self.parity, key=lambda r: -r.size)],
            "failed_tests": list(self.failed_tests),
            "error_vs_length": [row for r in self.parity for row in r.error_vs_length],
            "sections": list(self.sections),
            "cost": self.cost(),
            **{k: {**v, "seconds": secs[k]} for k, v in self.sections.items()},
        }

    def markdown(self) -> str:
        """``parity-report.md``: rendered from this report's JSON as :meth:`write` renders it
        (without the machine, which the markdown does not show)."""
        from unirep_port.parity.render import render_markdown

        return render_markdown(_as_json({"ok": self.ok, **self._content()}))

    def write(self, directory: str | os.PathLike | None = None) -> tuple[Path, Path, Path]:
        """Write the JSON, the markdown and the HTML page (rendered from that JSON) to
        ``directory`` (default: ``paths.results_dir()``); returns their paths."""
        from unirep_port.parity.paths import results_dir
        from unirep_port.parity.render import render_html, render_markdown

        directory = Path(directory) if directory is not None else results_dir()
        directory.mkdir(parents=True, exist_ok=True)
        data = _as_json(self.to_dict())
        paths = tuple(directory / f"parity-report.{ext}" for ext in ("json", "md", "html"))
        texts = (json.dumps(data, indent=2), render_markdown(data), render_html(data, directory))
        for path, text in zip(paths, texts):
            with atomic_file(path) as tmp:
                tmp.write_text(text)
        return paths


def _as_json(d: dict) -> dict:
    """``d`` as the JSON file holds it (NumPy values as Python ones, keys as strings)."""
    return json.loads(json.dumps(d, default=_json_default))
