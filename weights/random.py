"""Seeded random parameters of the true shapes, scaled like a trained model's.

Used for speed runs (no download needed) and for tests. Scales: every matrix ``w ~ N(0, 1) /
sqrt(fan_in)`` (so ``x @ w`` keeps unit-scale activations), each gain ``g`` = the column norms of
its ``w`` times ``U(0.5, 1.5)`` (so ``l2_normalize(w, axis=0) * g`` is ``w`` rescaled by an O(1)
factor; the normalisation is mirrored from unirep.py L113-125), ``b ~ N(0, 0.1)``, embedding
``N(0, 1)``, logit bias ``N(0, 0.1)``.
"""

from __future__ import annotations

import numpy as np

from unirep_port.sizes import (
    CELL_PARAMS,
    DENSE_B_KEY,
    DENSE_W_KEY,
    EMBED_KEY,
    expected_shapes,
    get_size,
)


def random_params(size: int | str, seed: int = 0) -> dict[str, np.ndarray]:
    """Canonical dict of float32 random weights for ``size`` (1900, 256 or 64), seeded.

    Args:
        size: the model size.
        seed: seed of ``np.random.default_rng``; the same (size, seed) gives identical arrays.
    """
    m = get_size(size)
    shapes = expected_shapes(size)
    rng = np.random.default_rng(seed)

    def normal(shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    out = {EMBED_KEY: normal(shapes[EMBED_KEY], 1.0)}  # (26, 10)
    for layer in range(m.n_layers):
        key = {n: m.cell_key(layer, n) for n in CELL_PARAMS}
        for w in ("wx", "wh", "wmx", "wmh"):
            shape = shapes[key[w]]  # (fan_in, fan_out)
            mat = normal(shape, 1.0 / np.sqrt(shape[0]))
            norms = np.sqrt(np.sum(mat.astype(np.float64) ** 2, axis=0))  # (fan_out,)
            gain = norms * rng.uniform(0.5, 1.5, size=shape[1])
            out[key[w]] = mat
            out[key["g" + w[1:]]] = gain.astype(np.float32)
        out[key["b"]] = normal(shapes[key["b"]], 0.1)  # (4H,)
    out[DENSE_W_KEY] = normal(shapes[DENSE_W_KEY], 1.0 / np.sqrt(m.hidden))  # (H, 25)
    out[DENSE_B_KEY] = normal(shapes[DENSE_B_KEY], 0.1)  # (25,)
    return {k: out[k] for k in shapes}
