"""Parity-suite fixtures: the published weights, shared TF babblers, and the report collector.

Every test that produces a verdict adds it to the session's :class:`Report`; at the end of the
session ``parity-report.json`` and ``parity-report.md`` are written to ``$PARITY_REPORT_DIR``
(default: ``parity_tests/results/``) when anything was added, and the markdown table is printed. Any
failing test of the suite is listed in the report and makes its verdict FAIL.
"""

from __future__ import annotations

import pytest

from unirep_port.parity.paths import results_dir
from unirep_port.parity.report import Report
from unirep_port.parity.shared import STORE

_REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Report:
    return _REPORT


@pytest.fixture(scope="session")
def babblers(published):
    """One TF reference graph per size, built on first use and closed at the end."""
    made: dict[int, object] = {}

    def get(size: int):
        if size not in made:
            from unirep_port import reference_tf

            made[size] = reference_tf.Babbler(published(size), size=size)
        return made[size]

    yield get
    for b in made.values():
        b.close()


def pytest_runtest_setup(item):
    """Name the running test, so shared computations say who computed and who reused them."""
    STORE.current = item.nodeid


def pytest_runtest_logreport(report):
    """A failing parity test fails the report's verdict too, named, whatever it added to it."""
    if report.failed:
        _REPORT.add_failed_test(report.nodeid, report.when)


def pytest_sessionfinish(session, exitstatus):
    if not (_REPORT.parity or _REPORT.sections or _REPORT.failed_tests):
        return
    if STORE.log:
        _REPORT.add("shared computations", STORE.section())
    directory = results_dir()  # $PARITY_REPORT_DIR, else parity_tests/results/
    json_path, md_path = _REPORT.write(directory)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line("")
        tr.write_line(_REPORT.markdown())
        tr.write_line(f"parity report written to {json_path} and {md_path}")
