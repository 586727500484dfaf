"""The porting kit on models it has never seen: two library-cell TF1 models and one written here.

Expected values: every reference is the real TensorFlow 2.21.0 computation (tf-keras 2.21.0
legacy cells); the exact results are float64 (the graph's float64 twin, or NumPy float64 for the
model in this file); no tolerance is a constant: the judge derives every bound at run time.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def table():
    from unirep_port.parity.generic_kill import kill_table

    return kill_table(seed=0)


def test_correct_ports_pass_and_every_planted_bug_fails(table, report):
    report.add("porting kit: generic judge (kill rate)", table)
    controls = [r for r in table["rows"] if r["bug"] is None]
    assert {r["model"] for r in controls} == {"lstm", "gru"}
    assert all(r["verdict_ok"] for r in controls), controls
    missed = [r for r in table["rows"] if r["bug"] is not None and r["verdict_ok"]]
    assert not missed, f"planted bugs the judge let through: {missed}"
    assert table["kill_rate"] == 1.0 and table["ok"]


# ----- a TF function and its JAX port written here, against the public API only -----------
def _tf_model(seed=0):
    """A tanh Elman RNN (tf.while_loop) + softmax head, weights as tf.Variables."""
    from unirep_port.tfstart import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(seed)
    wx = tf.Variable(rng.normal(0, 0.3, (6, 64)).astype(np.float32))
    wh = tf.Variable(rng.normal(0, 0.15, (64, 64)).astype(np.float32))
    wo = tf.Variable(rng.normal(0, 0.3, (64, 5)).astype(np.float32))

    @tf.function(autograph=False)
    def ref(x):  # x: (B, T, 6) -> (probs (B, T, 5), h (B, 64))
        xs = tf.transpose(x, [1, 0, 2])  # (T, B, 6)
        h0 = tf.zeros([tf.shape(x)[0], 64])
        hs = tf.scan(lambda h, xt: tf.tanh(xt @ wx + h @ wh), xs, initializer=h0)  # (T, B, 64)
        hs = tf.transpose(hs, [1, 0, 2])
        return tf.nn.softmax(hs @ wo, axis=-1), hs[:, -1]

    return ref, {"wx": wx.numpy(), "wh": wh.numpy(), "wo": wo.numpy()}


def _jax_model(w, softmax_axis=-1):
    import jax
    import jax.numpy as jnp

    @jax.jit
    def fn(x):  # (B, T, 6)
        def step(h, xt):
            h = jnp.tanh(xt @ w["wx"] + h @ w["wh"])  # (B, 6) @ (6, 64) + (B, 64) @ (64, 64)
            return h, h

        h, hs = jax.lax.scan(step, jnp.zeros((x.shape[0], 64), jnp.float32), x.swapaxes(0, 1))
        hs = hs.swapaxes(0, 1)  # (B, T, 64)
        return jax.nn.softmax(hs @ w["wo"], axis=softmax_axis), h

    return fn


def _inputs():
    rng = np.random.default_rng(3)
    return [(rng.normal(0, 1, (2, 9, 6)).astype(np.float32),) for _ in range(2)]


def test_outside_model_correct_port_passes_and_a_wrong_softmax_axis_fails():
    from unirep_port.porting import judge

    ref, w = _tf_model()
    good = judge(ref, _jax_model(w), _inputs(), time_axis=(1, None))
    assert good.ok, good.report()
    bad = judge(ref, _jax_model(w, softmax_axis=1), _inputs(), time_axis=(1, None))
    assert not bad.ok
    # the hidden state is right, the probabilities are not: the verdict says which leaf
    assert [r.output for r in bad.leaves if not r.ok] == ["[0]"], bad.report()
    assert "[0]: drift" in bad.report() and "FAIL" in bad.report()
    assert '"ok": false' in bad.to_json()


def test_single_array_output_and_a_frozen_constant_reference():
    """``reference`` with weights as constants (no variables); one array out."""
    from unirep_port.porting import from_tf, judge
    from unirep_port.tfstart import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.5, (6, 32)).astype(np.float32)
    ref = tf.function(lambda x: tf.tanh(x @ tf.constant(w)))

    import jax.numpy as jnp

    x = rng.normal(0, 1, (4, 6)).astype(np.float32)
    assert judge(ref, lambda x: jnp.tanh(x @ w), [(x,)]).ok
    assert not judge(ref, lambda x: jnp.tanh(x @ w) * (1 + 1e-4), [(x,)]).ok
    nan_at_one = judge(ref, lambda x: jnp.tanh(x @ w).at[1, 2].set(jnp.nan), [(x,)])
    assert not nan_at_one.ok, "a NaN must never pass"
    # the weight constant became a parameter of the converted function
    port = from_tf(ref, x)
    assert [v.shape for v in port.params.values()] == [(6, 32)]


def test_float64_twin_is_float64_and_exact():
    """The oracle's exact result equals NumPy float64 of the same math (to float64 rounding)."""
    from unirep_port.porting import from_tf, x64

    ref, w = _tf_model()
    (x,) = _inputs()[0]
    twin = from_tf(ref, x).float64()
    with x64():
        probs, h = twin(x.astype(np.float64))
    assert probs.dtype == np.float64
    wx, wh, wo = (w[k].astype(np.float64) for k in ("wx", "wh", "wo"))
    hh = np.zeros((2, 64))
    for t in range(x.shape[1]):  # NumPy float64, written from the equations
        hh = np.tanh(x[:, t].astype(np.float64) @ wx + hh @ wh)
    np.testing.assert_allclose(np.asarray(h), hh, rtol=0, atol=1e-13)
    import jax

    assert not jax.config.jax_enable_x64, "x64 must not leak out of its scope"


def test_unsupported_op_is_named():
    from unirep_port.porting import ConversionError, from_tf
    from unirep_port.tfstart import import_tensorflow

    tf = import_tensorflow()
    a = np.eye(3, dtype=np.float32) * 2
    fn = tf.function(lambda b: tf.linalg.solve(tf.constant(a), b))
    with pytest.raises(ConversionError, match="MatrixSolve"):
        from_tf(fn, np.ones((3, 1), np.float32))


def test_tf1_control_flow_is_detected_and_said():
    from unirep_port.porting import ConversionError, GraphSpec
    from unirep_port.porting.convert import from_graph_def
    from unirep_port.tfstart import import_tensorflow

    tf = import_tensorflow()
    v1 = tf.compat.v1
    v1.disable_control_flow_v2()
    try:
        g = tf.Graph()
        with g.as_default():
            x = v1.placeholder(tf.float32, [None], name="x")
            _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [0, x])
    finally:
        v1.enable_control_flow_v2()
    spec = GraphSpec(g.as_graph_def(), ("x:0",), y.name)
    with pytest.raises(ConversionError, match="TF1 control flow.*Enter"):
        from_graph_def(spec, (np.ones(2, np.float32),))


def test_a_custom_oracle_is_used_and_checked():
    """An :class:`Oracle` of the caller's own (NumPy float64 here) replaces the automatic one."""
    from unirep_port.porting import judge
    from unirep_port.tfstart import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.5, (6, 8)).astype(np.float32)
    ref = tf.function(lambda x: tf.tanh(x @ tf.constant(w)))
    calls = []

    def oracle(x, *, members, seed):
        calls.append((members, seed))
        exact = np.tanh(x.astype(np.float64) @ w.astype(np.float64))
        r = np.random.default_rng(seed)
        wits = [
            np.tanh(x @ (w * (1 + r.choice([-1, 0, 1], w.shape) * 2**-24)).astype(np.float32))
            for _ in range(members)
        ]
        return exact, wits

    import jax.numpy as jnp

    x = rng.normal(0, 1, (3, 6)).astype(np.float32)
    assert judge(ref, lambda x: jnp.tanh(x @ w), [(x,)], oracle=oracle, members=5, seed=7).ok
    assert calls == [(5, 7)]
    with pytest.raises(ValueError, match="witnesses"):
        judge(
            ref,
            lambda x: jnp.tanh(x @ w),
            [(x,)],
            members=4,
            oracle=lambda x, members, seed: oracle(x, members=2, seed=seed),
        )


def test_pytree_inputs_with_a_custom_oracle():
    """Arguments may be pytrees (a dict here) when the caller brings the oracle."""
    import jax.numpy as jnp

    from unirep_port.porting import judge
    from unirep_port.tfstart import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(4)
    w = rng.normal(0, 0.5, (6, 8)).astype(np.float32)
    ref = tf.function(lambda d: tf.tanh(d["x"] @ tf.constant(w)) * d["s"])

    def oracle(d, *, members, seed):
        x64, w64 = d["x"].astype(np.float64), w.astype(np.float64)
        r = np.random.default_rng(seed)
        wits = [
            np.tanh(d["x"] @ (w * (1 + r.choice([-1, 0, 1], w.shape) * 2**-24))) * d["s"]
            for _ in range(members)
        ]
        return np.tanh(x64 @ w64) * d["s"], [a.astype(np.float32) for a in wits]

    d = {"x": rng.normal(0, 1, (3, 6)).astype(np.float32), "s": np.float32(2.0)}
    assert judge(ref, lambda d: jnp.tanh(d["x"] @ w) * d["s"], [(d,)], oracle=oracle).ok
    assert not judge(ref, lambda d: jnp.tanh(d["x"] @ w), [(d,)], oracle=oracle).ok
