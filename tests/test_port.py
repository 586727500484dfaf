"""Tests of the JAX port (jax_port): agreement with an independent numpy cell, batching
invariance, order, repeatability, compile bound, inputs and errors.

Expected values come from ``_np_reps`` below, a plain float64 numpy transcription of
unirep.py L75-126 (mLSTMCell1900.call), L283-309 (the stack) and L395-420 (get_rep), written
for this file and sharing no code with jax_port.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerance import BRIEF_H, DENSE_F32, GRAD_VARIANT, RUN_H, SAME_MATH, assert_close

from unirep_port import jax_port, sizes, weights
from unirep_port.alphabet import AA_TO_INT, STANDARD_AA

AA = STANDARD_AA
REPS = ("h_avg", "h_final", "c_final")  # get_reps' outputs, in order


def _np_states(d: dict, seq: str):
    """Per-position (h, c) of the last layer for one sequence, float64 numpy (L+1 positions)."""
    size = sizes.detect_size({k: v.shape for k, v in d.items()})
    m = sizes.SIZES[size]
    toks = [24] + [AA_TO_INT[a] for a in seq]
    x_seq = np.asarray(d["embed_matrix"], np.float64)[toks]  # (L+1, 10)

    def wn(w, g):
        w = np.asarray(w, np.float64)
        return w / np.sqrt(np.maximum((w**2).sum(0, keepdims=True), 1e-12)) * g

    layers = []
    for i in range(m.n_layers):
        k = lambda n, i=i: np.asarray(d[m.cell_key(i, n)], np.float64)  # noqa: E731
        layers.append(
            (
                wn(k("wx"), k("gx")),
                wn(k("wh"), k("gh")),
                wn(k("wmx"), k("gmx")),
                wn(k("wmh"), k("gmh")),
                k("b"),
            )
        )
    h = [np.zeros(m.hidden) for _ in layers]
    c = [np.zeros(m.hidden) for _ in layers]
    hs, cs = [], []
    for x in x_seq:
        inp = x
        for i, (wx, wh, wmx, wmh, b) in enumerate(layers):
            mm = (inp @ wmx) * (h[i] @ wmh)
            z = inp @ wx + mm @ wh + b
            H = m.hidden
            sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
            ig, fg, og, u = (
                sig(z[:H]),
                sig(z[H : 2 * H]),
                sig(z[2 * H : 3 * H]),
                np.tanh(z[3 * H :]),
            )
            c[i] = fg * c[i] + ig * u
            h[i] = og * np.tanh(c[i])
            inp = h[i]
        hs.append(h[-1].copy())
        cs.append(c[-1].copy())
    return np.array(hs), np.array(cs)


def _np_reps(d, seq):
    hs, cs = _np_states(d, seq)
    return hs.mean(0), hs[-1], cs[-1]


@pytest.fixture(scope="module")
def rand64():
    return weights.random_params(64, seed=3)


@pytest.fixture(scope="module")
def p64(rand64):
    return jax_port.from_canonical(rand64)


def _rand_seqs(rng, n, lo=1, hi=80):
    return ["".join(rng.choice(list(AA), int(rng.integers(lo, hi + 1)))) for _ in range(n)]


# Lengths around the K=32 chunk boundary (31, 32, 33 tokens) and a multi-chunk one.
EDGE_SEQS = ["M", "MK", "A" * 30, "C" * 31, "W" * 32, STANDARD_AA * 4, "XBZJUO" * 3]


def test_matches_numpy_cell_random_64(rand64, p64):
    got = jax_port.get_reps(EDGE_SEQS, p64, batch_size=4, chunk_len=32)
    hs = jax_port.get_hidden_states(EDGE_SEQS, p64)
    for i, s in enumerate(EDGE_SEQS):
        want = _np_reps(rand64, s)
        for k in range(3):
            assert_close(got[k][i], want[k], RUN_H, REPS[k])
        assert_close(hs[i], _np_states(rand64, s)[0], RUN_H, "hidden states")
        assert hs[i].shape == (len(s) + 1, 64)


def test_matches_numpy_cell_real_64(published):
    d = published(64)
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLE"]
    got = jax_port.get_reps(seqs, d)
    for i, s in enumerate(seqs):
        want = _np_reps(d, s)
        for k in range(3):
            assert_close(got[k][i], want[k], RUN_H, REPS[k])


@pytest.mark.parametrize("size", [64, 256])
def test_real_weights_finite_and_distinct(published, size):
    ha, hf, cf = jax_port.get_reps(["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVAG"], published(size))
    for a in (ha, hf, cf):
        assert a.shape == (2, size) and a.dtype == np.float32 and np.isfinite(a).all()
    assert not np.allclose(ha[0], ha[1])  # different sequences, different reps


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 12),
    batch_size=st.sampled_from([1, 2, 4, 8]),
    chunk_len=st.sampled_from([8, 32]),
)
def test_rep_alone_equals_rep_in_mixed_batch(p64, seed, n, batch_size, chunk_len):
    seqs = _rand_seqs(np.random.default_rng(seed), n)
    batch = jax_port.get_reps(seqs, p64, batch_size=batch_size, chunk_len=chunk_len)
    for i, s in enumerate(seqs):  # also checks the caller's order is kept
        alone = jax_port.get_reps(s, p64, batch_size=1, chunk_len=chunk_len)
        for k in range(3):
            assert batch[k][i].shape == (64,)
            assert_close(batch[k][i], alone[k][0], BRIEF_H, REPS[k])


@settings(max_examples=4, deadline=None)
@given(size=st.sampled_from([64, 256]), n=st.integers(1, 5), seed=st.integers(0, 99))
def test_shapes_and_fusion(size, n, seed):
    p = jax_port.from_canonical(weights.random_params(size, seed=1))
    seqs = _rand_seqs(np.random.default_rng(seed), n, 1, 40)
    ha, hf, cf = jax_port.get_reps(seqs, p)
    assert ha.shape == hf.shape == cf.shape == (n, size)
    fus = jax_port.fusion_reps(seqs, p)
    np.testing.assert_array_equal(fus, np.concatenate([ha, hf, cf], 1))
    # hidden states agree with the fast path (a different code path: no per-token tables)
    hs = jax_port.get_hidden_states(seqs, p)
    for i in range(n):
        assert_close(hs[i].mean(0), ha[i], SAME_MATH, "h_avg")
        assert_close(hs[i][-1], hf[i], SAME_MATH, "h_final")


@pytest.mark.slow
def test_size_1900_random_agrees_with_numpy():
    d = weights.random_params(1900, seed=0)
    seqs = ["MKTAYIAK", "GS"]
    got = jax_port.get_reps(seqs, d, batch_size=2)
    for i, s in enumerate(seqs):
        for k, w in enumerate(_np_reps(d, s)):
            assert_close(got[k][i], w, RUN_H, REPS[k])


def test_bitwise_repeatable(p64):
    seqs = _rand_seqs(np.random.default_rng(5), 20, 1, 120)
    a = jax_port.get_reps(seqs, p64, batch_size=8)
    b = jax_port.get_reps(seqs, p64, batch_size=8)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_compile_count_bounded(p64):
    rng = np.random.default_rng(7)
    lens = rng.permutation(np.arange(1, 31)) * 7
    seqs = ["".join(rng.choice(list(AA), int(n))) for n in lens]  # 30 distinct lengths
    before = jax_port.compile_count()
    jax_port.get_reps(seqs, p64, batch_size=16)
    first = jax_port.compile_count() - before
    assert first <= 3  # prepare, chunk and harvest for B=16, whatever the lengths
    lens2 = rng.permutation(np.arange(31, 61)) * 5
    seqs2 = ["".join(rng.choice(list(AA), int(n))) for n in lens2]
    mid = jax_port.compile_count()
    jax_port.get_reps(seqs2, p64, batch_size=16)
    assert jax_port.compile_count() == mid  # new lengths: no new compile


def test_generator_and_iter_reps(p64):
    seqs = _rand_seqs(np.random.default_rng(9), 7)
    want = jax_port.get_reps(seqs, p64)
    got = jax_port.get_reps((s for s in seqs), p64)
    for x, y in zip(want, got):
        assert_close(x, y, SAME_MATH, "reps")
    counted = []
    chunks = list(
        jax_port.iter_reps(
            ((f"id{i}", s) for i, s in enumerate(seqs)), p64, chunk_seqs=3, on_tokens=counted.append
        )
    )
    assert [len(c[0]) for c in chunks] == [3, 3, 1]
    assert [i for c in chunks for i in c[0]] == [f"id{i}" for i in range(7)]
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), [len(s) for s in seqs])
    assert sum(counted) == sum(len(s) + 1 for s in seqs)  # tokens incl. start tokens
    for k in range(3):
        got_k = np.concatenate([c[2 + k] for c in chunks])
        assert_close(got_k, want[k], SAME_MATH, REPS[k])


def test_bad_input_errors_name_sequence_and_letter(p64):
    with pytest.raises(ValueError, match=r"#1.*'\*' at 2"):
        jax_port.get_reps(["MKT", "MK*A"], p64)
    with pytest.raises(ValueError, match=r"'p2'.*'-'"):
        list(jax_port.iter_reps([("p1", "MK"), ("p2", "M-K")], p64))
    with pytest.raises(ValueError, match="empty"):
        jax_port.get_reps([], p64)
    with pytest.raises(TypeError, match="#0"):
        jax_port.get_reps([b"MK"], p64)


def test_params_roundtrip_and_errors(rand64):
    p = jax_port.from_canonical(rand64)
    back = jax_port.to_canonical(p)
    assert set(back) == set(rand64)
    for k in rand64:
        np.testing.assert_array_equal(back[k], rand64[k])
    bad = dict(rand64)
    del bad["rnn/mlstm_stack/mlstm_stack2/mlstm_stack2/wmh"]
    with pytest.raises(weights.WeightsError, match="missing key: .*mlstm_stack2/wmh"):
        jax_port.from_canonical(bad, 64)
    bad = dict(rand64, **{"fully_connected/biases": np.zeros(24, np.float32)})
    with pytest.raises(weights.WeightsError, match="fully_connected/biases"):
        jax_port.from_canonical(bad, 64)


def test_logits_and_forward_grad(rand64, p64):
    import jax
    import jax.numpy as jnp

    seqs = ["MKTAYIAK", "GS"]
    lg = jax_port.get_logits(seqs, p64)
    hs = jax_port.get_hidden_states(seqs, p64)
    for i in range(2):
        want = hs[i] @ rand64["fully_connected/weights"] + rand64["fully_connected/biases"]
        assert_close(lg[i], want, DENSE_F32, "logits")
    toks = jnp.asarray([[24, 1, 4, 8, 0], [24, 13, 7, 0, 0]], jnp.int32)
    lens = jnp.asarray([4, 3], jnp.int32)
    g = jax.grad(lambda p: jax_port.forward(p, toks, lens)[1].sum())(p64)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(g))


def test_babble_deterministic_valid(p64):
    import jax

    a = jax_port.babble("MKT", 30, 1.0, jax.random.PRNGKey(1), params=p64)
    b = jax_port.babble("MKT", 30, 1.0, jax.random.PRNGKey(1), params=p64)
    assert a == b and a.startswith("MKT") and 4 <= len(a) <= 30
    assert set(a) <= set(AA_TO_INT)


@pytest.mark.parametrize("bf16_faster", [False, True])
def test_precision_report_on_cpu(p64, monkeypatch, bf16_faster):
    """Zero where "fast" fell back to float32 (the probe measured bf16 slower), bf16's
    rounding (> float32 unit roundoff, < 0.05) where the probe measured it faster."""
    from unirep_port.jax_port import precision

    monkeypatch.setattr(precision, "cpu_bf16_path", lambda *a: "avx512_bf16")
    monkeypatch.setattr(precision, "probe", lambda hidden, batch: 2.0 if bf16_faster else 0.5)
    rep = jax_port.precision_error_report(["MKTAYIAK", "GS"], p64)
    assert set(rep) == {"h_avg", "h_final", "c_final"}
    if bf16_faster:
        assert all(1e-6 < v < 0.05 for v in rep.values())
    else:
        assert all(v == 0.0 for v in rep.values())


def test_planted_sigmoid_bug_reaches_every_path(p64):
    """A sigmoid planted through the prepared model reaches the reps engine, the per-position
    path, babbling and the evotuning loss and gradient (fused backward and unfused), with no
    global patching or cache clearing; the default model is untouched before and after."""
    import jax

    from unirep_port.jax_port.evotuning import objective as el

    bad_sigmoid = lambda x: 0.5 * jax.numpy.tanh(x) + 0.5  # noqa: E731
    bad = jax_port.prepare(p64, cell=jax_port.DEFAULT_CELL._replace(sigmoid=bad_sigmoid))
    good = jax_port.prepare(p64)
    seqs = ["MKTAYIAK", "GSW"]
    reps_good = jax_port.get_reps(seqs, p64)[0]
    assert np.abs(jax_port.get_reps(seqs, bad)[0] - reps_good).max() > 1e-3
    np.testing.assert_array_equal(jax_port.get_reps(seqs, good)[0], reps_good)
    hs_good, hs_bad = jax_port.get_hidden_states(seqs, p64), jax_port.get_hidden_states(seqs, bad)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(hs_good, hs_bad))
    lg_good, lg_bad = jax_port.get_logits(seqs, p64), jax_port.get_logits(seqs, bad)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(lg_good, lg_bad))
    keys = [jax.random.PRNGKey(k) for k in range(8)]  # babbling: the step-by-step path
    assert any(
        jax_port.babble("MKT", 40, 1.0, k, params=bad)
        != jax_port.babble("MKT", 40, 1.0, k, params=p64)
        for k in keys
    )

    x, y, m = el.make_batch(seqs)
    P = jax_port.load_params(p64)
    for fused in (True, False):
        vg, gg = jax.value_and_grad(el.loss)(P, x, y, m, fused=fused)
        vb, gb = jax.value_and_grad(el.loss)(P, x, y, m, fused=fused, cell=bad.cell)
        assert abs(float(vb) - float(vg)) > 1e-4
        dg = max(
            float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(gg), jax.tree.leaves(gb))
        )
        assert dg > 1e-4
    # The fused backward differentiates the cell's own functions (jax.vjp) when they are not the
    # defaults: its gradients equal JAX's differentiation of mlstm_step (the unfused path).
    d = jax_port.DEFAULT_CELL
    swap = lambda z: (lambda i, f, o, u: (f, i, o, u))(*d.gate_split(z))  # noqa: E731
    variants = [
        bad.cell,
        d._replace(gate_split=swap),
        d._replace(tanh=lambda v: 1.5 * jax.numpy.tanh(v)),
    ]
    for variant in variants:
        g1 = jax.grad(el.loss)(P, x, y, m, fused=True, cell=variant, tbptt=3, block=4)
        g2 = jax.grad(el.loss)(P, x, y, m, fused=False, cell=variant, tbptt=3, block=4)
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
            assert_close(a, b, GRAD_VARIANT, "gradient")
    tuned, _ = jax_port.evotune(seqs * 2, bad, epochs=1, batch_size=2, holdout=0, progress=False)
    tuned_good, _ = jax_port.evotune(
        seqs * 2, p64, epochs=1, batch_size=2, holdout=0, progress=False
    )
    assert not np.array_equal(tuned.cells[0].wh, tuned_good.cells[0].wh)


def test_cell_variants_compile_once_and_leave_the_default_cached(p64):
    """jit keys on the prepared weights' static cell: a second model with the same CellFns hits
    the compiled code, and the default path never recompiles after a variant ran."""
    import jax

    seqs = ["MKTAYIAK"]
    jax_port.get_reps(seqs, p64)
    n0 = jax_port.compile_count()
    jax_port.get_reps(seqs, p64)
    assert jax_port.compile_count() == n0  # default: cached
    cellv = jax_port.DEFAULT_CELL._replace(sigmoid=jax.nn.sigmoid)
    jax_port.get_reps(seqs, jax_port.prepare(p64, cell=cellv))
    n1 = jax_port.compile_count()
    assert n1 > n0  # a new cell compiles
    jax_port.get_reps(seqs, jax_port.prepare(p64, cell=cellv))  # an equal cell: no compile
    jax_port.get_reps(seqs, p64)
    assert jax_port.compile_count() == n1
    assert jax_port.DEFAULT_CELL._replace() == jax_port.DEFAULT_CELL
    assert hash(cellv) == hash(jax_port.DEFAULT_CELL._replace(sigmoid=jax.nn.sigmoid))


SHARD_SCRIPT = r"""
import numpy as np, jax
from unirep_port import weights, jax_port
from unirep_port.alphabet import STANDARD_AA
assert jax.local_device_count() == 2, jax.devices()
p = weights.random_params(64, seed=3)
seqs = ["MKTAYIAKQR", "G", STANDARD_AA * 3]
two = jax_port.get_reps(seqs, p, batch_size=3)
one = jax_port.get_reps(seqs, p, batch_size=3, device=jax.devices()[0])
for a, b in zip(two, one):  # tests/tolerance.py's SAME_MATH: the same math on two devices
    np.testing.assert_allclose(a, b, atol=1e-6)
print("OK")
"""


def test_two_device_sharding_subprocess():
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    r = subprocess.run(
        [sys.executable, "-c", SHARD_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_iter_reps_consumes_input_lazily(p64):
    pulled = []

    def records():
        for i in range(10_000):  # far more than is ever read below
            pulled.append(i)
            yield f"r{i}", "MK" + AA[i % 20]

    it = jax_port.iter_reps(records(), p64, chunk_seqs=50, batch_size=16)
    ids, lengths, ha, hf, cf = next(it)
    assert ids == [f"r{i}" for i in range(50)] and ha.shape == (50, 64)
    np.testing.assert_array_equal(lengths, np.full(50, 3))
    assert len(pulled) <= 51  # only the first chunk was read: memory is flat in the input size
    it.close()


def test_sigmoid_error_is_bounded_elementwise():
    """``cell.sigmoid`` against float64 on a dense float32 grid, every element within its bound.

    Derivation (u = 2**-24): the small side ``s = t / (1 + t)``, ``t = exp(-|x|)``, has relative
    error <= 6u (XLA's float32 exp within 2 ulp = 4u, then one rounding each for the add and the
    divide). For ``x >= 0`` the result ``1 - s`` is rounded once onto the grid below 1 (half its
    spacing, u/2, for f in [0.5, 1)), so ``|err| <= u/2 + 6u * s``; for ``x < 0`` the result is
    ``s`` itself, ``|err| <= 6u * s`` plus float32's smallest normal spacing. The form
    ``1 / (1 + exp(-x))`` breaks the first bound near f = 1, where ``1 + exp(-x)`` is rounded to
    spacing 2u.
    """
    import jax

    x = np.linspace(-40.0, 40.0, 400_001, dtype=np.float32)
    x64 = x.astype(np.float64)
    exact = np.where(x64 >= 0, 1 / (1 + np.exp(-x64)), np.exp(x64) / (1 + np.exp(x64)))
    got = np.asarray(jax.jit(jax_port.cell.sigmoid)(x)).astype(np.float64)
    u = 2.0**-24
    small = np.minimum(exact, 1 - exact)  # s = sigmoid(-|x|)
    bound = np.where(x64 >= 0, u / 2, 0.0) + 6 * u * small + np.finfo(np.float32).smallest_normal
    err = np.abs(got - exact)
    worst = int(np.argmax(err / bound))
    assert (err <= bound).all(), f"x={x[worst]}: error {err[worst]:.3e} > bound {bound[worst]:.3e}"
    # the saturated side, where the cell state accumulates the forget gate's error
    sat = exact >= 0.9
    assert err[sat].max() <= 1.1 * u, err[sat].max() / u


def test_hidden_states_and_logits_in_one_pass_equal_the_two_functions(p64):
    """The parity suite takes both per-position outputs from one pass
    (``positions.get_hidden_states_and_logits``): it must give exactly what the two public
    functions give, sequence by sequence (bitwise: the same compiled forward)."""
    from unirep_port.jax_port.positions import get_hidden_states_and_logits

    seqs = ["M", "MKTAYIAKQRQISFVKSHFSRQ", "ACDEFGHIKLMNPQRSTVWY" * 7]
    hs, lg = get_hidden_states_and_logits(seqs, p64, 64, batch_size=2)
    for a, b in zip(hs, jax_port.get_hidden_states(seqs, p64, 64, batch_size=2)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(lg, jax_port.get_logits(seqs, p64, 64, batch_size=2)):
        np.testing.assert_array_equal(a, b)
    assert [h.shape for h in hs] == [(len(s) + 1, 64) for s in seqs]


def test_per_position_slots_refilled_mid_run_start_from_zero(p64):
    """``get_hidden_states`` batches continuously: with 2 slots for 9 sequences of mixed
    lengths, each slot takes a new sequence whenever its last one ends, at a chunk boundary
    (16 steps for the 64 model). Every sequence's states and logits must be bitwise those it
    gets in a fresh batch of two (itself twice): a slot refilled without its state reset, or
    the outputs of one chunk copied to the wrong sequence or position, breaks that."""
    from unirep_port.jax_port.positions import get_hidden_states_and_logits

    rng = np.random.default_rng(11)
    seqs = _rand_seqs(rng, 9, lo=1, hi=70)
    hs, lg = get_hidden_states_and_logits(seqs, p64, 64, batch_size=2)
    for s, h, g in zip(seqs, hs, lg):
        (h2, _), (g2, _) = get_hidden_states_and_logits([s, s], p64, 64, batch_size=2)
        np.testing.assert_array_equal(h, h2, err_msg=f"hidden states of {s!r}")
        np.testing.assert_array_equal(g, g2, err_msg=f"logits of {s!r}")
