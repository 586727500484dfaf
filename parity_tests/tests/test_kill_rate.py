"""Power of the suite: every planted port bug must make the parity comparison fail.

The reference outputs are the golden fixtures (TF 2.21.0 reference on the published weights), so
this runs in the ordinary test run without TensorFlow. The control (no bug) must pass, otherwise a
"kill" would mean nothing.
"""

from __future__ import annotations

import pytest

from unirep_port.parity.compare import compare
from unirep_port.parity.engine import jax_outputs
from unirep_port.parity.golden import golden_panel, load_golden
from unirep_port.parity.planted_bugs import BUG_NAMES, describe, kill_rate_section, plant

KILL_SIZES = [64, 256]


def _run(size, published, bug=None):
    ref, _ = load_golden(size)
    panel = golden_panel()
    params = published(size) if bug is None else plant(bug, published(size), size)
    port = jax_outputs(params, [s for _, s in panel], size)
    return compare(ref, port, [i for i, _ in panel], size, impl_a="tf-golden", impl_b="jax")


@pytest.fixture(scope="module")
def kill_matrix(published, report):
    """Every bug at every size, computed once whichever tests ``-k`` selects, in whatever order;
    the report's section comes from the whole matrix (``planted_bugs.kill_rate_section``)."""
    results = {(s, b): _run(s, published, b) for s in KILL_SIZES for b in BUG_NAMES}
    report.add(
        "planted bugs (kill rate)",
        kill_rate_section({k: not r.ok for k, r in results.items()}, KILL_SIZES),
    )
    return results


@pytest.mark.parametrize("size", KILL_SIZES)
def test_control_passes(size, published):
    assert _run(size, published).ok


@pytest.mark.parametrize("size", KILL_SIZES)
@pytest.mark.parametrize("bug", BUG_NAMES)
def test_planted_bug_is_caught(bug, size, kill_matrix):
    result = kill_matrix[(size, bug)]
    assert not result.ok, f"planted bug {bug!r} ({describe(bug)}) passed the parity comparison"
    assert result.failures(), "a failing result must say what diverged"


def test_kill_rate_section_needs_the_whole_matrix():
    """A partial matrix (what a module-global tally held after ``-k``) is refused, naming the
    missing cell; the full one gives the rate over all of it (2 of 2*len(BUG_NAMES) missed here,
    a made-up matrix)."""
    full = {(s, b): True for s in KILL_SIZES for b in BUG_NAMES}
    partial = dict(full)
    del partial[(256, BUG_NAMES[-1])]
    with pytest.raises(ValueError, match=f"\\(256, '{BUG_NAMES[-1]}'\\)"):
        kill_rate_section(partial, KILL_SIZES)
    full[(64, BUG_NAMES[0])] = full[(256, BUG_NAMES[1])] = False
    sec = kill_rate_section(full, KILL_SIZES)
    n = len(KILL_SIZES) * len(BUG_NAMES)
    assert sec["ok"] is False and sec["kill_rate"] == (n - 2) / n and len(sec["rows"]) == n
    assert [r["caught"] for r in sec["rows"]].count(False) == 2


# The same bugs through the live comparison `tox -e parity` runs (TF reference computed before the
# bug is planted, teacher-forced conditioning evidence gathered with it): the float32-conditioning
# attribution must never excuse a planted bug.
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("bug", BUG_NAMES)
def test_planted_bug_is_caught_live(bug, published, babblers):
    from unirep_port.parity import tiers
    from unirep_port.parity.compare import over_tolerance
    from unirep_port.parity.engine import conditioning_of, one, tf_outputs
    from unirep_port.parity.panel import parity_panel

    params, babbler = published(64), babblers(64)
    panel = parity_panel(max_length=tiers.current().live_bug_max_length)
    ids, seqs = [i for i, _ in panel], [s for _, s in panel]
    ref = tf_outputs(babbler, seqs)
    bugged = plant(bug, params, 64)  # the port side only: the reference keeps the true cell
    port = jax_outputs(bugged, seqs, 64)
    result = compare(ref, port, ids, 64)
    cond = {
        i: conditioning_of(babbler, params, bugged, seqs[i], 64, one(ref, i), one(port, i))
        for i in over_tolerance(result)
    }
    result = compare(ref, port, ids, 64, conditioning=cond)
    assert not result.ok, f"planted bug {bug!r} passed the live parity comparison"
    excused = {s.output: s.n_excused for s in result.stats if s.n_excused}
    assert not excused, f"planted bug {bug!r}: places attributed to float32 rounding: {excused}"
