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
from unirep_port.parity.planted_bugs import BUG_NAMES, describe, planted

KILL_SIZES = [64, 256]
_kills: dict[tuple[int, str], bool] = {}


def _run(size, published):
    ref, _ = load_golden(size)
    panel = golden_panel()
    port = jax_outputs(published(size), [s for _, s in panel], size)
    return compare(ref, port, [i for i, _ in panel], size, impl_a="tf-golden", impl_b="jax")


@pytest.mark.parametrize("size", KILL_SIZES)
def test_control_passes(size, published):
    assert _run(size, published).ok


@pytest.mark.parametrize("size", KILL_SIZES)
@pytest.mark.parametrize("bug", BUG_NAMES)
def test_planted_bug_is_caught(bug, size, published, report):
    with planted(bug):
        result = _run(size, published)
    _kills[(size, bug)] = not result.ok
    rows = [
        {"size": s, "bug": b, "what": describe(b), "caught": k}
        for (s, b), k in sorted(_kills.items())
    ]
    caught = sum(r["caught"] for r in rows)
    report.add(
        "planted bugs (kill rate)",
        {
            "ok": caught == len(rows),
            "summary": f"kill rate {caught}/{len(rows)} = {caught / len(rows):.0%}",
            "kill_rate": caught / len(rows),
            "rows": rows,
        },
    )
    assert not result.ok, f"planted bug {bug!r} ({describe(bug)}) passed the parity comparison"
    assert result.failures(), "a failing result must say what diverged"


# The same bugs through the live comparison `tox -e parity` runs (TF reference computed before the
# bug is planted, teacher-forced conditioning evidence gathered with it): the float32-conditioning
# attribution must never excuse a planted bug.
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("bug", BUG_NAMES)
def test_planted_bug_is_caught_live(bug, published, babblers):
    from unirep_port.parity.compare import over_tolerance
    from unirep_port.parity.engine import conditioning_of, one, tf_outputs
    from unirep_port.parity.panel import parity_panel

    params, babbler = published(64), babblers(64)
    panel = parity_panel(max_length=1000)
    ids, seqs = [i for i, _ in panel], [s for _, s in panel]
    ref = tf_outputs(babbler, seqs)
    with planted(bug):
        port = jax_outputs(params, seqs, 64)
        result = compare(ref, port, ids, 64)
        cond = {
            i: conditioning_of(babbler, params, params, seqs[i], 64, one(ref, i), one(port, i))
            for i in over_tolerance(result)
        }
        result = compare(ref, port, ids, 64, conditioning=cond)
    assert not result.ok, f"planted bug {bug!r} passed the live parity comparison"
    excused = {s.output: s.n_excused for s in result.stats if s.n_excused}
    assert not excused, f"planted bug {bug!r}: places attributed to float32 rounding: {excused}"
