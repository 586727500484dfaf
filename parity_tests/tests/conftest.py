"""Parity-suite fixtures: the published weights, shared TF babblers, and the report collector.

Every test that produces a verdict adds it to the session's :class:`Report`; at the end of the
session ``parity-report.json``, ``.md`` and ``.html`` are written to ``$PARITY_REPORT_DIR``
(default: ``parity_tests/results/``) when anything was added, and the markdown table is printed. Any
failing test of the suite is listed in the report and makes its verdict FAIL.
"""

from __future__ import annotations

import os

import pytest

from unirep_port.jax_port import compile_cache  # its counters listen from the first compile on
from unirep_port.parity.paths import results_dir
from unirep_port.parity.report import Report
from unirep_port.parity.shared import STORE

_REPORT = Report()
# What the random examples and regressions of test_parity_full drew and how many of their
# sequences got evidence (their results are not in the report's parity table); read at the end
# for the report's "random examples" and "false-alarm budget" sections.
_EXAMPLES: dict = {"rows": [], "investigated": 0}
_COMPILES_AT: dict[str, dict] = {}  # nodeid -> compile_cache.counts() when its setup began

# ``PARITY_COMPILE_CACHE=1`` (the parity tox envs set it): the suite's XLA executables go to the
# persistent compile cache beside the weights (``<cache>/xla-cache``, as the CLI's), so a second
# run on the machine reads them back instead of compiling. The executables are the same bits
# either way; the report's cost section says how many were read and how many compiled.
COMPILE_CACHE_ENV = "PARITY_COMPILE_CACHE"
if os.environ.get(COMPILE_CACHE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
    compile_cache.enable(compile_cache.default_dir())


@pytest.fixture(scope="session")
def report() -> Report:
    return _REPORT


@pytest.fixture(scope="session")
def examples() -> dict:
    """The session's record of random examples and regressions (see ``_EXAMPLES``)."""
    return _EXAMPLES


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Sections added from here on (fixtures included) belong to this test, for their cost; and
    shared computations say which test computed and which reused them."""
    _REPORT.current_test = item.nodeid
    STORE.current = item.nodeid
    _COMPILES_AT[item.nodeid] = compile_cache.counts()


def pytest_runtest_teardown(item, nextitem):
    _REPORT.current_test = item.nodeid


def pytest_runtest_logreport(report):
    """Each phase's duration goes to the test's cost; a failing parity test fails the report's
    verdict too, named, whatever it added to it."""
    _REPORT.record_duration(report.nodeid, report.duration)
    if report.when == "teardown":  # what is added after this belongs to no test
        _REPORT.current_test = None
        before = _COMPILES_AT.pop(report.nodeid, None)
        if before is not None:
            now = compile_cache.counts()
            _REPORT.record_compiles(
                report.nodeid,
                now["compiles"] - before["compiles"],
                now["seconds"] - before["seconds"],
            )
    if report.failed:
        _REPORT.add_failed_test(report.nodeid, report.when)


def _random_examples() -> dict:
    """The run's seed of its random examples and how to draw them again (``tiers.run_seed``)."""
    from unirep_port.parity import tiers

    tier = tiers.current()
    return {
        "ok": all(r["ok"] for r in _EXAMPLES["rows"]),
        "summary": (
            f"hypothesis' mixed batches ({tier.name} tier: {tier.hypothesis_examples[0]} examples "
            f"per 256/64 model, {tier.hypothesis_examples[1]} on 1900) are drawn from seed "
            f"{tiers.run_seed()}; replay them with `{tiers.replay_command(tier.name)}`; "
            f"{len(_EXAMPLES['rows'])} examples ran this time"
        ),
        "seed": tiers.run_seed(),
        "replay": tiers.replay_command(tier.name),
        "rows": _EXAMPLES["rows"],
    }


def pytest_sessionfinish(session, exitstatus):
    if not (_REPORT.parity or _REPORT.sections or _REPORT.failed_tests or _EXAMPLES["rows"]):
        return
    if STORE.log:
        _REPORT.add("shared computations", STORE.section())
    _REPORT.add("random examples", _random_examples())
    from unirep_port.parity import budget

    taken = {**_REPORT.to_dict(), "investigated_elsewhere": _EXAMPLES["investigated"]}
    _REPORT.add("false-alarm budget", budget.false_alarm_budget(taken))
    d = compile_cache.directory()
    _REPORT.compiles = {**compile_cache.counts(), "cache_dir": str(d) if d else None}
    directory = results_dir()  # $PARITY_REPORT_DIR, else parity_tests/results/
    paths = _REPORT.write(directory)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line("")
        tr.write_line(_REPORT.markdown())
        tr.write_line("parity report written to " + ", ".join(str(p) for p in paths))
