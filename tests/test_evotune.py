"""Unit tests of evotuning (jax_port.evotuning): loss, remat/tbptt gradients, loop, checkpoints,
CLI, package layout.

Models are the 64 size with seeded random weights (``weights.random_params``) so no download is
needed; expected values come from an independent numpy computation or from a second code path.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
import pytest
from tolerance import GRAD_ORDER, NO_CUT, assert_close

from unirep_port import weights
from unirep_port.alphabet import STANDARD_AA
from unirep_port.cli.evotune import register
from unirep_port.jax_port import evotuning as ev
from unirep_port.jax_port.model import forward
from unirep_port.jax_port.params import from_canonical, to_canonical

SEQS = ["MKTAYIAKQR", "MSTNPKPQRKTKRNTNRRPQDVKFPGGGQIVGGVYLLPRRGPRLGVRATRK", "ACD", "WWYL"]


@pytest.fixture(scope="module")
def params64():
    return from_canonical(weights.random_params(64, seed=3), 64)


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def _family(n: int, seed: int) -> list[str]:
    """A toy 'family': mutants of one random 30-mer, lengths 25-35 (learnable structure)."""
    rng = np.random.default_rng(seed)
    aa = np.array(list(STANDARD_AA))
    base = rng.choice(aa, 35)
    out = []
    for _ in range(n):
        s = base[: rng.integers(25, 36)].copy()
        pos = rng.integers(0, len(s), 2)
        s[pos] = rng.choice(aa, 2)
        out.append("".join(s))
    return out


def test_make_batch_layout():
    # Expected by hand from alphabet.AA_TO_INT: M=1 K=4, A=15 C=11 D=5; start 24, stop 25.
    x, y, m = ev.make_batch(["MK", "ACD"], width=6, rows=3)
    np.testing.assert_array_equal(x[0], [24, 1, 4, 0, 0, 0])
    np.testing.assert_array_equal(y[0], [1, 4, 25, 0, 0, 0])
    np.testing.assert_array_equal(x[1], [24, 15, 11, 5, 0, 0])
    np.testing.assert_array_equal(y[1], [15, 11, 5, 25, 0, 0])
    np.testing.assert_array_equal(m.sum(1), [3, 4, 0])
    with pytest.raises(ValueError, match=r"sequence #1 .*'\*' at 2"):
        ev.make_batch(["MK", "AC*"])


def test_loss_equals_numpy_cross_entropy(params64):
    """The loss equals a float64 numpy cross-entropy over logits of the plain ``forward`` path."""
    x, y, m = ev.make_batch(SEQS)
    lengths = (m > 0).sum(1)
    _, logits = forward(params64, x, lengths)  # (B, T, 25) via jax_port.model, no remat
    lg = np.asarray(logits, np.float64)
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)  # (B, T)
    cls = np.maximum(y - 1, 0)  # logit k predicts token k + 1
    xent = lse - np.take_along_axis(lg, cls[..., None], -1)[..., 0]  # (B, T)
    expected = np.mean((xent * m).sum(1) / m.sum(1))
    got = float(ev.loss(params64, x, y, m))
    assert abs(got - expected) / expected < 1e-6
    # Rows of batch padding (all-zero mask) do not change the value.
    xp, yp, mp = ev.make_batch(SEQS, rows=7)
    assert abs(float(ev.loss(params64, xp, yp, mp)) - got) < 1e-6


def test_remat_blocking_and_fused_backward_do_not_change_gradients(params64):
    """Reference: JAX's own differentiation of cell.mlstm_step, one step per block, no remat."""
    x, y, m = ev.make_batch(SEQS)
    ref = _flat(jax.grad(ev.loss)(params64, x, y, m, remat=False, block=1, fused=False))
    for remat, block, fused in [(True, 32, True), (True, 7, True), (False, 16, True),
                                (True, 32, False), (False, 5, False)]:  # fmt: skip
        g = _flat(jax.grad(ev.loss)(params64, x, y, m, remat=remat, block=block, fused=fused))
        assert_close(g, ref, GRAD_ORDER, "gradient", scale=np.abs(ref).max())


def test_tbptt(params64):
    x, y, m = ev.make_batch(SEQS)
    full = _flat(jax.grad(ev.loss)(params64, x, y, m, tbptt=None))
    # The fused backward cuts exactly where stop_gradient does in JAX's own differentiation.
    for fused_kw in [dict(tbptt=4), dict(tbptt=6, block=4)]:
        a = _flat(jax.grad(ev.loss)(params64, x, y, m, fused=True, **fused_kw))
        b = _flat(jax.grad(ev.loss)(params64, x, y, m, fused=False, **fused_kw))
        assert_close(a, b, GRAD_ORDER, "gradient", scale=np.abs(b).max())
    # A window longer than the batch never cuts: equal to full BPTT.
    long = _flat(jax.grad(ev.loss)(params64, x, y, m, tbptt=x.shape[1] + 1))
    assert_close(long, full, NO_CUT, "gradient")
    # A short window cuts the gradient (and leaves the loss value unchanged).
    short = jax.grad(ev.loss)(params64, x, y, m, tbptt=4)
    assert np.linalg.norm(_flat(short) - full) > 1e-3 * np.linalg.norm(full)
    assert float(ev.loss(params64, x, y, m, tbptt=4)) == pytest.approx(
        float(ev.loss(params64, x, y, m)), rel=1e-6
    )
    with pytest.raises(ValueError, match="tbptt"):
        ev.loss(params64, x, y, m, tbptt=0)


def test_bucket_widths():
    assert [ev.bucket_width(n) for n in (1, 32, 33, 48, 49, 65, 100, 129)] == [
        32, 32, 48, 48, 64, 96, 128, 192,
    ]  # fmt: skip
    widths = {ev.bucket_width(n) for n in range(1, 2001)}
    assert len(widths) <= 14 and all(w % 16 == 0 for w in widths)


def test_evotune_reduces_loss_and_is_reproducible(params64, tmp_path):
    seqs = _family(20, seed=0)
    kw = dict(epochs=2, batch_size=8, lr=3e-3, holdout=0.1, progress=False, seed=5)
    tuned, hist = ev.evotune(seqs, params64, checkpoint_dir=tmp_path, **kw)
    e1, e2 = hist["epochs"]
    start = float(ev.eval_loss(params64, ev.make_batch(seqs)))
    after = float(ev.eval_loss(tuned, ev.make_batch(seqs)))
    assert after < start - 0.05, (start, after)
    assert e2["train_loss"] < e1["train_loss"]
    assert hist["settings"]["n_train"] == 18 and hist["settings"]["n_holdout"] == 2
    json.dumps(hist)  # JSON-ready
    tuned2, hist2 = ev.evotune(seqs, params64, **kw)
    np.testing.assert_array_equal(_flat(tuned2), _flat(tuned))
    assert [e["train_loss"] for e in hist2["epochs"]] == [e["train_loss"] for e in hist["epochs"]]
    # Checkpoints are canonical files that weights.load reads back exactly.
    ck = weights.load(tmp_path / "epoch-002.safetensors")
    best = weights.load(tmp_path / "best.safetensors")
    assert set(ck) == set(weights.random_params(64))
    tuned_c = to_canonical(tuned)
    for k in tuned_c:
        np.testing.assert_array_equal(best[k], tuned_c[k])


def test_train_step_in_user_loop(params64):
    batch = ev.make_batch(SEQS)
    state = ev.init_opt_state(params64, lr=1e-2)
    p, values = params64, []
    for _ in range(3):
        p, state, v = ev.train_step(p, state, batch)
        values.append(float(v))
    assert values[0] == pytest.approx(float(ev.loss(params64, *batch)), rel=1e-6)
    assert values[2] < values[0]


def _cli(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_outputs(tmp_path):
    fasta = tmp_path / "fam.fasta"
    fasta.write_text("".join(f">s{i} toy\n{s}\n" for i, s in enumerate(_family(10, seed=1))))
    wpath = tmp_path / "start.safetensors"
    weights.save(weights.random_params(64, seed=0), wpath, "canonical")
    out = tmp_path / "out"
    argv = ["evotune", str(fasta), "-o", str(out), "--weights", str(wpath), "--epochs", "1"]
    rc = _cli(argv + ["--batch-size", "4", "--lr", "1e-3", "--quiet", "--seed", "1"])
    assert rc == 0
    tuned = weights.load(out / "tuned.safetensors")
    assert tuned["fully_connected/weights"].shape == (64, 25)
    hist = json.loads((out / "history.json").read_text())
    assert hist["n_records"] == 10 and len(hist["epochs"]) == 1


def test_cli_bad_fasta_names_record(tmp_path, capsys):
    fasta = tmp_path / "bad.fasta"
    fasta.write_text(">good\nMKTAYIAKQR\n>broken_one\nMKT-AYI\n")
    out = tmp_path / "out"
    rc = _cli(["evotune", str(fasta), "-o", str(out), "--size", "64", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "broken_one" in err and "'-'" in err
    assert not out.exists()


def test_lr_search_picks_a_tried_rate(params64):
    pytest.importorskip("optuna")
    seqs = _family(20, seed=0)
    best, trials = ev.lr_search(
        seqs, n_trials=2, params=params64, epochs=1, batch_size=8, lr_range=(1e-4, 1e-2)
    )
    assert len(trials) == 2 and all(1e-4 <= t["lr"] <= 1e-2 for t in trials)
    assert best == min(trials, key=lambda t: t["holdout_loss"])["lr"]


def test_lr_search_without_optuna_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` raise ImportError
    with pytest.raises(ImportError, match="pip install optuna"):
        ev.lr_search(["MKT"], n_trials=1)


def test_package_layout_no_name_clash_no_import_cycle():
    """``jax_port.evotune`` is the function and ``jax_port.evotuning`` the package; no submodule
    shares a name with a function; the submodules' imports (lazy ones too) form no cycle."""
    import ast
    import pkgutil
    import sys
    from pathlib import Path

    from unirep_port import jax_port

    assert jax_port.evotune is ev.evotune and callable(jax_port.evotune)
    assert jax_port.evotune_loss is ev.loss
    assert (
        sys.modules["unirep_port.jax_port.evotuning"] is ev
        and "unirep_port.jax_port.evotune" not in sys.modules
    )
    subs = {m.name for m in pkgutil.iter_modules(ev.__path__)}
    assert subs == {"objective", "rnn", "search", "step", "train"}
    assert not subs & set(ev.__all__) and not subs & set(jax_port.__all__)

    graph = {}  # submodule -> submodules it imports anywhere in its body
    for name in subs:
        tree = ast.parse((Path(ev.__path__[0]) / f"{name}.py").read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "unirep_port.jax_port.evotuning":
                deps |= {a.name for a in node.names} & subs
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps.add(node.module.removeprefix("unirep_port.jax_port.evotuning.").split(".")[0])
            elif isinstance(node, ast.Import):
                deps |= {a.name.removeprefix("unirep_port.jax_port.evotuning.") for a in node.names}
        graph[name] = deps & subs

    done: set[str] = set()

    def visit(name, path):
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert graph["train"] >= {"objective", "step"} and graph["search"] == {"train"}
