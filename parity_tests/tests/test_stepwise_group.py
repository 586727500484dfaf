"""The teacher-forced steps' evidence of a group in one call (``stepwise.prefetch_steps``) is each
sequence's own: the same float32 members bit for bit (their summation orders come from the seed
alone, ``oracle.step_members``) and the same float64 step to float64 rounding.

Real published 64 weights (four stacked cells, so every layer's state is stepped) and real
proteins (``parity_tests/data/real_proteins.fasta``); the expected values are the one-sequence
path's own (``stepwise._exact_and_members`` on that sequence's rows alone), which the parity
suite's teacher-forced checks have always used.
"""

from __future__ import annotations

import numpy as np

from unirep_port.parity import oracle, oracle_jax, stepwise
from unirep_port.parity.realpanel import real_panel

# Float64 rounding bound on one step evaluated with the rows blocked differently by the BLAS:
# each output is a sum of at most 4 x 1900 products, so two float64 evaluations differ by at
# most about n * 2**-53 = 8.4e-13 of the largest term (the gate's values are at most ~1 in |h|
# and relative in c); 1e-12 is that bound, 10**5 below the float32 step errors being judged.
F64_STEP = 1e-12


def test_group_steps_are_each_sequences_own(published):
    params = published(64)
    seqs = [s for _, s in real_panel(24)][6:10]  # four proteins of different lengths
    oracle_jax.prefetch(params, 64, seqs, members=2)  # the float64 states, as run_parity does
    stepwise.prefetch_steps(params, seqs, 64)
    digest = oracle.params_digest(params)
    assert len(stepwise._KEPT) == len(seqs)
    for s in seqs:
        h_ex, c_ex, eh, ec = stepwise._KEPT[(64, digest, s)]
        rows = stepwise._inputs(params, s, 64)[2:]
        a_h, a_c, a_eh, a_ec = stepwise._exact_and_members(params, 64, *rows)
        assert eh.shape == (stepwise.STEP_MEMBERS, len(s) + 1)
        assert np.abs(h_ex - a_h).max() <= F64_STEP
        assert np.abs(c_ex - a_c).max() <= F64_STEP * np.abs(a_c).max()
        # the members' errors differ only by the float64 step they are measured from
        assert np.abs(eh - a_eh).max() <= 2 * F64_STEP
        assert np.abs(ec - a_ec).max() <= 2 * F64_STEP
        members = list(oracle.step_members(params, 64, *rows, members=3))
        group = list(
            oracle.step_members(
                params,
                64,
                *map(np.concatenate, zip(*[stepwise._inputs(params, t, 64)[2:] for t in seqs])),
                members=3,
            )
        )
        start = sum(len(t) + 1 for t in seqs[: seqs.index(s)])
        for (h, c), (gh, gc) in zip(members, group):
            assert np.array_equal(h, gh[start : start + len(s) + 1])
            assert np.array_equal(c, gc[start : start + len(s) + 1])


def test_grouped_ensembles_are_each_sequences_ensemble(published):
    """``oracle_jax.float32_ensembles`` (the golden alarm's witnesses, one batched run) gives each
    sequence its own members: its own positions, nudged apart from each other, each as far
    from the float64 oracle as float32 goes (the oracle's own outputs are the reference)."""
    params = published(64)
    seqs = [s for _, s in real_panel(24)][2:5]
    exact = oracle_jax.oracle_outputs(params, seqs, 64)
    ens = oracle_jax.float32_ensembles(params, seqs, 64, members=4)
    assert len(ens) == len(seqs)
    for i, (s, e) in enumerate(zip(seqs, ens)):
        assert [h.shape for h in e.hs] == [(len(s) + 1, 64)] * 4
        assert e.h_avg.shape == (4, 64) and e.logits[0].shape == (len(s) + 1, 25)
        assert not np.array_equal(e.hs[0], e.hs[1])  # nudged apart
        for h in e.hs:
            d = np.abs(h - exact.hs[i]).max()
            # float32 drift of a 64-wide recurrence: above one ulp of |h| <= 1, far below 1e-3
            assert 2**-24 < d < 1e-3, d
