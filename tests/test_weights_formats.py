"""``weights.io`` and the formats: bitwise round trips, detection, bad files, atomic writes.

Reference arrays: the real published weights (``published`` fixture -> weights.load_published,
hash-pinned by weights/manifest.json) and seeded ``random_params``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from tolerance import F64_FORMULA, assert_close

from unirep_port import weights
from unirep_port.weights import WeightsError, convert, detect_format, load, random_params, save


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a
    )


def _listing(folder):
    return sorted(p.name for p in folder.rglob("*"))


@pytest.mark.parametrize("size", [1900, 256, 64])
def test_round_trip_every_format_is_bitwise(published, size, tmp_path):
    ref = published(size)
    src = tmp_path / "start.safetensors"
    save(ref, src, "canonical")
    chain = [
        ("tf1-npy", tmp_path / "npy"),
        ("tf1-ckpt", tmp_path / "ckpt"),
        ("jax-unirep", tmp_path / "w.npz"),
        ("jax-unirep", tmp_path / "w.pkl"),
    ]
    if size == 1900:
        chain.append(("tape", tmp_path / "w.pt"))
    chain.append(("canonical", tmp_path / "end.safetensors"))
    for fmt, dst in chain:
        report = convert(src, dst, fmt, allow_pickle=True)
        assert report.ok and report.size == size
        assert detect_format(dst) == fmt
        assert _same(load(dst, allow_pickle=True), ref), f"{fmt} changed the arrays"
        src = dst
    # The canonical writer is deterministic: same arrays -> same bytes (and the manifest hash).
    assert (tmp_path / "start.safetensors").read_bytes() == (
        tmp_path / "end.safetensors"
    ).read_bytes()


def test_tf1_npy_names_are_the_original_ones(tmp_path):
    # Names from unirep.py L83-91 (1900) and L249 (stack: "{0}_mlstm_stack{1}_wx:0.npy").
    save(random_params(1900), tmp_path / "a", "tf1-npy")
    names = set(os.listdir(tmp_path / "a"))
    assert {"rnn_mlstm_mlstm_wx:0.npy", "rnn_mlstm_mlstm_gmh:0.npy", "embed_matrix:0.npy"} <= names
    assert {"fully_connected_weights:0.npy", "fully_connected_biases:0.npy"} <= names
    save(random_params(64), tmp_path / "b", "tf1-npy")
    assert "rnn_mlstm_stack_mlstm_stack3_mlstm_stack3_wmx:0.npy" in os.listdir(tmp_path / "b")


def test_tf1_ckpt_variable_names(tmp_path):
    import tensorflow as tf

    save(random_params(256, seed=3), tmp_path / "ck", "tf1-ckpt")
    prefix = str(next((tmp_path / "ck").glob("*.index")))[: -len(".index")]
    names = dict(tf.train.list_variables(prefix))
    assert names["rnn/mlstm_stack/mlstm_stack1/mlstm_stack1/wh"] == [256, 1024]
    assert names["fully_connected/weights"] == [256, 25]


def test_tape_weight_norm_reproduces_tf_normalisation(tmp_path):
    # TF (unirep.py L113-125): w_eff = l2_normalize(w, axis=0) * g, used as x @ w_eff.
    # torch weight_norm(dim=0): W = g * v / ||v||_row, used as x @ W.T. They must agree.
    torch = pytest.importorskip("torch")
    params = random_params(1900, seed=1)
    save(params, tmp_path / "t.pt", "tape")
    sd = torch.load(tmp_path / "t.pt", weights_only=True)
    for name, gname in (("wx", "gx"), ("wmh", "gmh")):
        w = params[f"rnn/mlstm/mlstm/{name}"].astype(np.float64)
        g = params[f"rnn/mlstm/mlstm/{gname}"].astype(np.float64)
        tf_eff = w / np.sqrt(np.maximum((w**2).sum(0, keepdims=True), 1e-12)) * g
        v = sd[f"unirep.encoder.mlstm_cell.{name}.weight_v"].double()
        gg = sd[f"unirep.encoder.mlstm_cell.{name}.weight_g"].double()
        torch_w = torch._weight_norm(v, gg, 0).numpy()  # (out, in)
        assert_close(torch_w.T, tf_eff, F64_FORMULA, name)
    assert sd["feedforward.weight"].shape == (25, 1900)
    assert np.array_equal(
        sd["unirep.encoder.mlstm_cell.wh.bias"].numpy(), params["rnn/mlstm/mlstm/b"]
    )


def test_tape_rejects_stacked_sizes(tmp_path):
    with pytest.raises(WeightsError, match="only the 1900 model"):
        save(random_params(256), tmp_path / "t.pt", "tape")
    assert os.listdir(tmp_path) == []
    save(random_params(1900), tmp_path / "t.pt", "tape")
    with pytest.raises(WeightsError, match="only the 1900 model"):
        load(tmp_path / "t.pt", size=256)


def test_tape_unirep_model_dict_reports_missing_dense(tmp_path):
    torch = pytest.importorskip("torch")
    save(random_params(1900), tmp_path / "t.pt", "tape")
    sd = torch.load(tmp_path / "t.pt", weights_only=True)
    bare = {k[len("unirep.") :]: v for k, v in sd.items() if k.startswith("unirep.")}
    torch.save(bare, tmp_path / "model.pt")
    with pytest.raises(WeightsError) as err:
        load(tmp_path / "model.pt")
    assert "missing key: fully_connected/weights" in str(err.value)
    assert "missing key: fully_connected/biases" in str(err.value)
    assert "model.pt" in str(err.value)


def test_tf1_npy_missing_file_is_named(tmp_path):
    save(random_params(64), tmp_path / "npy", "tf1-npy")
    (tmp_path / "npy" / "rnn_mlstm_stack_mlstm_stack2_mlstm_stack2_gh:0.npy").unlink()
    with pytest.raises(WeightsError, match=r"rnn_mlstm_stack_mlstm_stack2_mlstm_stack2_gh:0\.npy"):
        load(tmp_path / "npy")


@pytest.mark.parametrize(
    "fmt,name", [("canonical", "w.safetensors"), ("jax-unirep", "w.npz"), ("tape", "w.pt")]
)
def test_truncated_file_is_an_error_naming_it(tmp_path, fmt, name):
    size = 1900 if fmt == "tape" else 64
    dst = tmp_path / name
    save(random_params(size), dst, fmt)
    dst.write_bytes(dst.read_bytes()[: dst.stat().st_size // 2])
    with pytest.raises(WeightsError, match=name):
        load(dst)


def test_truncated_npy_is_named(tmp_path):
    save(random_params(64), tmp_path / "npy", "tf1-npy")
    f = tmp_path / "npy" / "embed_matrix:0.npy"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(WeightsError, match="embed_matrix:0.npy"):
        load(tmp_path / "npy")


def test_save_refuses_overwrite_and_leaves_nothing_on_failure(tmp_path):
    params = random_params(64)
    src = save(params, tmp_path / "src.safetensors", "canonical")
    dst = tmp_path / "dst.npz"
    dst.write_bytes(b"keep me")
    with pytest.raises(WeightsError, match="dst.npz"):
        convert(src, dst, "jax-unirep")
    assert dst.read_bytes() == b"keep me"
    convert(src, dst, "jax-unirep", force=True)
    assert _same(load(dst), params)
    # A source that fails its check: nothing is written, no temp files remain.
    bad = dict(params, embed_matrix=np.full((26, 10), np.nan, np.float32))
    before = _listing(tmp_path)
    with pytest.raises(WeightsError, match="embed_matrix"):
        save(bad, tmp_path / "bad.safetensors", "canonical")
    with pytest.raises(WeightsError, match="only the 1900"):
        convert(src, tmp_path / "x.pt", "tape")
    assert _listing(tmp_path) == before


def test_failed_folder_write_leaves_nothing_and_keeps_old(tmp_path, monkeypatch):
    from unirep_port.weights import fmt_tf1

    params = random_params(64)
    save(params, tmp_path / "npy", "tf1-npy")

    def broken(params, path):
        (path / "half.npy").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setitem(weights.io._REGISTRY, "tf1-npy", (fmt_tf1.read_npy, broken, True))
    before = _listing(tmp_path)
    with pytest.raises(WeightsError, match="disk full"):
        save(random_params(64, seed=9), tmp_path / "npy", "tf1-npy", force=True)
    assert _listing(tmp_path) == before
    assert _same(load(tmp_path / "npy"), params)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    f = tmp_path / "model_weights.pkl"
    f.write_bytes(pickle.dumps((np.zeros((26, 10), np.float32), _Evil())))
    with pytest.raises(WeightsError, match="allow_pickle"):
        load(f)
    with pytest.raises(WeightsError) as err:
        load(f, allow_pickle=True)
    msg = str(err.value)
    assert "system" in msg and ("posix" in msg or "os" in msg) and "model_weights.pkl" in msg


def test_jax_unirep_2x_pickle_layout(tmp_path):
    # jax-unirep 2.x pickles (evotuning_models.py, stax serial): embedding, then per layer
    # (cell dict, ()), then (w, b), ().
    params = random_params(64, seed=4)
    save(params, tmp_path / "w.pkl", "jax-unirep")
    tree = pickle.loads((tmp_path / "w.pkl").read_bytes())
    assert len(tree) == 11 and tree[2] == () and tree[-1] == ()
    assert np.array_equal(tree[3]["wmx"], params["rnn/mlstm_stack/mlstm_stack1/mlstm_stack1/wmx"])
    assert np.array_equal(tree[9][0], params["fully_connected/weights"])


def test_detect_format(tmp_path):
    p = random_params(64)
    save(p, tmp_path / "noext", "canonical")
    assert detect_format(tmp_path / "noext") == "canonical"
    save(p, tmp_path / "ck", "tf1-ckpt")
    prefix = str(next((tmp_path / "ck").glob("*.index")))[: -len(".index")]
    assert detect_format(prefix) == "tf1-ckpt"
    assert _same(load(prefix), p)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="empty"):
        detect_format(tmp_path / "empty")
    with pytest.raises(WeightsError, match="nope"):
        load(tmp_path / "nope.npz")
    with pytest.raises(WeightsError, match="unknown weights format"):
        save(p, tmp_path / "x", "onnx")


@pytest.mark.parametrize("name", ["w.npz", "w.pt", "w.safetensors", "w.pkl", "w.bin"])
def test_a_file_that_is_not_a_weights_file_says_so_and_names_it(tmp_path, name):
    """A text file under a weights suffix: the error says it is not a weights file and names it
    (issue 29: a ``.npz`` was reported as "contains pickled (object) data")."""
    dst = tmp_path / name
    dst.write_text(">seq1\nMKTAYIAKQRQISFVKSHFSRQ\n")  # a FASTA file given as weights
    with pytest.raises(WeightsError) as exc:
        load(dst, allow_pickle=True)
    msg = str(exc.value)
    assert str(dst) in msg and "not a weights file" in msg, msg
    assert "pickled" not in msg, msg
