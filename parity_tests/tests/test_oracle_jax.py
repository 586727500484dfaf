"""The compiled oracle (``parity.oracle_jax``) against the NumPy oracle (``parity.oracle``).

Two statements of the same math, written apart (neither imports the other's functions, and
neither imports the port). On real proteins (``parity_tests/data/real_proteins.fasta``) with the
published weights, per tier (``parity.tiers``: a 64-model panel in the gate, every size in the
full tier):

* float64 outputs agree within a derived bound: float64 rounding is 2**-29 times float32's, and
  the recurrence amplifies both alike, so the two float64 evaluations may differ by at most the
  float32 members' drift from float64 on that sequence times ``U64 / U32``, widened by the
  Student-t factor the suite uses (``drift.tail_factor``) and floored at 64 float64 ulp -- the
  same statistic on both sides (per sequence, the mean over positions of the largest unit
  difference, as ``realpanel`` measures drift);
* the compiled ensemble is at least as strict a witness as the NumPy one: its per-sequence
  median member drift is not significantly larger (``drift.sign_test`` at the tier's level,
  ``tiers.Tier.bulk_level``), so replacing one by the other weakens no bound. The other
  direction is reported, not gated: the compiled members round ``tanh`` once from float64
  (``oracle_jax._tanh``), NumPy's float32 ``tanh`` is within about 1.4 ulp, so on the 64 model
  (short dot products, elementwise rounding dominant) the compiled members are measurably a
  little more accurate.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from unirep_port.parity import tiers
from unirep_port.parity.drift import ALPHA_SEQUENCE, U32, rms, sign_test, tail_factor
from unirep_port.parity.realpanel import STATS, drifts_from_float64, real_panel

pytestmark = pytest.mark.slow

U64 = 2.0**-53
MEMBERS = 5
CASES = sorted(tiers.current().oracle_crosscheck.items(), reverse=True)


@pytest.mark.parametrize(("size", "n"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_compiled_oracle_agrees_with_numpy_oracle(size, n, published, report):
    from unirep_port.parity import oracle, oracle_jax

    params = published(size)
    seqs = [s for _, s in real_panel(n)]
    t0 = time.perf_counter()
    ex_np = oracle.oracle_outputs(params, seqs, size, backend="numpy")
    d_np = drifts_from_float64(params, size, seqs, {}, members=MEMBERS, backend="numpy")
    t1 = time.perf_counter()
    ex_jx = oracle_jax.oracle_outputs(params, seqs, size)
    d_jx = drifts_from_float64(params, size, seqs, {}, members=MEMBERS, backend="jax")
    t2 = time.perf_counter()

    k = tail_factor(MEMBERS, ALPHA_SEQUENCE / len(seqs))
    member_hs = np.array([d_np[f"member{j}"]["hs"] for j in range(MEMBERS)])  # (K, n)
    scale = rms(member_hs)  # (n,) float32 drift scale of each sequence
    worst = []
    for i in range(len(seqs)):
        bound = k * (U64 / U32) * scale[i] + 64 * U64
        # the members' statistic: mean over positions of the largest unit difference
        diff = np.abs(ex_np.hs[i] - ex_jx.hs[i]).max(axis=1).mean()
        worst.append(diff / bound)
    i_worst = int(np.argmax(worst))

    tests, info = {}, {}
    for stat in STATS:
        m_np = np.median([d_np[f"member{j}"][stat] for j in range(MEMBERS)], axis=0)
        m_jx = np.median([d_jx[f"member{j}"][stat] for j in range(MEMBERS)], axis=0)
        level = tiers.current().bulk_level()
        tests[f"{stat}: compiled vs numpy"] = sign_test(m_jx, m_np, alpha=level)
        info[f"{stat}: numpy vs compiled"] = sign_test(m_np, m_jx, alpha=level)
    ok = max(worst) <= 1 and all(t["ok"] for t in tests.values())
    report.add(
        f"compiled oracle cross-check {size}",
        {
            "ok": bool(ok),
            "summary": (
                f"{len(seqs)} real proteins: float64 hs of the compiled and NumPy oracles within "
                f"{max(worst):.2g} of the derived bound (worst: sequence {i_worst}); the compiled "
                "members not less accurate than the NumPy ones (sign test per statistic; the "
                "other direction reported, not gated). NumPy "
                f"{t1 - t0:.1f} s, compiled {t2 - t1:.1f} s (compile included)."
            ),
            "rows": [
                {
                    "test": name,
                    "gated": name in tests,
                    **{k2: t[k2] for k2 in ("n", "port_worse", "p_value", "median_ratio", "ok")},
                }
                for name, t in {**tests, **info}.items()
            ],
        },
    )
    assert max(worst) <= 1, f"float64 oracles differ beyond the derived bound: {max(worst):.3g}"
    bad = {name: t for name, t in tests.items() if not t["ok"]}
    assert not bad, f"the compiled members are less accurate than the NumPy ones: {bad}"
