"""Typed parameter pytrees of the JAX port and conversion from/to the canonical dict.

The canonical dict (see ``unirep_port.sizes``) uses the original TF variable names; here the same
arrays live in NamedTuples, which JAX treats as pytrees (so ``jax.grad`` and ``jit`` see leaves).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import NamedTuple

import jax
import numpy as np

from unirep_port import sizes
from unirep_port.jax_port.types import (
    XpH4H,
    XpHH,
    XpHO,
    XpIn4H,
    XpInH,
    XpVE,
    XpVec4H,
    XpVecH,
    XpVecO,
)


class CellParams(NamedTuple):
    """Raw (not yet weight-normalised) weights of one mLSTM cell, TF layout ``x @ w``.

    Mirrors the variables created in unirep.py L83-110 (mLSTMCell1900.call). Leaves are jax
    arrays (float64 numpy inside ``model.prepare_host``).
    """

    wx: XpIn4H
    wh: XpH4H
    wmx: XpInH
    wmh: XpHH
    b: XpVec4H
    gx: XpVec4H
    gh: XpVec4H
    gmx: XpVecH
    gmh: XpVecH


class Params(NamedTuple):
    """All weights of one UniRep model: embedding, one cell per layer, the logit layer."""

    embedding: XpVE
    cells: tuple[CellParams, ...]
    dense_w: XpHO
    dense_b: XpVecO

    @property
    def hidden(self) -> int:
        return int(self.cells[0].wmh.shape[0])

    @property
    def n_layers(self) -> int:
        return len(self.cells)


def from_canonical(d: Mapping[str, np.ndarray], size: int | None = None) -> Params:
    """Build :class:`Params` from a canonical dict ``{TF variable name: array}``.

    Args:
        d: canonical parameters (exactly the keys of ``sizes.expected_shapes(size)``).
        size: 1900, 256 or 64; detected from the shapes when None.

    Raises:
        weights.WeightsError: (a ValueError) naming every missing, unexpected, misshapen,
            non-float or non-finite key (``weights.checked``, the kit's one validator).
    """
    from unirep_port.weights.check import checked  # lazy, as in _published

    canon, size = checked(d, size, source="parameters")
    return _from_checked(canon, size)


def _from_checked(canon: Mapping[str, np.ndarray], size: int) -> Params:
    """:class:`Params` of a canonical dict that has passed ``weights.check`` and whose arrays no
    one else holds (XLA:CPU may use an aligned host array in place: ``from_canonical`` passes
    the copies ``checked`` made, ``_published`` the arrays it has just read)."""
    # device_put, not jnp.asarray: a plain transfer (jnp.asarray stages a conversion program
    # per shape, ~15 lowerings and compile-cache reads in a fresh process)
    arrs = {k: jax.device_put(np.asarray(a, np.float32)) for k, a in canon.items()}
    m = sizes.get_size(size)
    cells = tuple(
        CellParams(*(arrs[m.cell_key(i, n)] for n in sizes.CELL_PARAMS)) for i in range(m.n_layers)
    )
    return Params(arrs[sizes.EMBED_KEY], cells, arrs[sizes.DENSE_W_KEY], arrs[sizes.DENSE_B_KEY])


def to_canonical(p: Params) -> dict[str, np.ndarray]:
    """The canonical dict (numpy float32) of ``p``; the inverse of :func:`from_canonical`."""
    m = sizes.get_size(p.hidden)
    out = {sizes.EMBED_KEY: np.asarray(p.embedding, np.float32)}
    for i, cell in enumerate(p.cells):
        for n in sizes.CELL_PARAMS:
            out[m.cell_key(i, n)] = np.asarray(getattr(cell, n), np.float32)
    out[sizes.DENSE_W_KEY] = np.asarray(p.dense_w, np.float32)
    out[sizes.DENSE_B_KEY] = np.asarray(p.dense_b, np.float32)
    sizes_ok = sizes.expected_shapes(m.hidden)
    assert set(out) == set(sizes_ok)
    return out


# id(Params) -> (the Params, a digest of its arrays), for Params whose content is known without
# hashing it: the published weights (held here, so an id cannot be reused while listed)
_DIGESTS: dict[int, tuple[Params, str]] = {}


def content_digest(p: Params) -> str | None:
    """A string that identifies the arrays of ``p`` where that is known without reading them
    (the published weights: their file's verified SHA-256), else None."""
    held = _DIGESTS.get(id(p))
    return held[1] if held is not None and held[0] is p else None


@functools.lru_cache(maxsize=4)
def _published(size: int) -> Params:
    from unirep_port.weights import (
        published,  # lazy: the weights package is optional for users passing their own params
    )

    # load_published has run weights.check on these arrays (read just now, held by no one
    # else): not checked and copied twice (the saving: docs/speed.md, "A one-sequence run")
    p = _from_checked(published.load_published(size), size)
    _DIGESTS[id(p)] = (p, published.published_digest(size))
    return p


def load_params(size_or_path: int | str | os.PathLike | Params | Mapping = 1900) -> Params:
    """Parameters from a size (published weights, cached), a weights file, a dict or Params."""
    if isinstance(size_or_path, Params):
        return size_or_path
    if isinstance(size_or_path, Mapping):
        return _from_dict_cached(size_or_path)
    if isinstance(size_or_path, int) or (
        isinstance(size_or_path, str) and size_or_path.strip().isdigit()
    ):
        return _published(sizes.get_size(size_or_path).hidden)
    from unirep_port import weights

    return from_canonical(weights.load(size_or_path))


_DICT_CACHE: list[tuple[Mapping, tuple, tuple, Params]] = []


def _from_dict_cached(d: Mapping) -> Params:
    """:func:`from_canonical` of a dict, remembered for the same dict holding the same arrays.

    Calling ``get_reps(seqs, params_dict)`` repeatedly then converts (and, downstream, weight-
    normalises) once, not per call. The key is the dict's identity plus its arrays' identities,
    and the entry holds references to all of them, so no id can be reused while cached; replacing an
    array in the dict misses the cache. Arrays modified in place are not detected: pass a new
    dict (or call :func:`clear_param_cache`) after editing weights in place.
    """
    key = tuple((k, id(v)) for k, v in d.items())
    for held, held_key, _arrays, p in _DICT_CACHE:
        if held is d and held_key == key:
            return p
    p = from_canonical(d)
    _DICT_CACHE.insert(0, (d, key, tuple(d.values()), p))  # the arrays too: ids stay unique
    del _DICT_CACHE[2:]
    return p


def clear_param_cache() -> None:
    """Forget the cached published weights and converted dicts."""
    _published.cache_clear()
    _DIGESTS.clear()
    _DICT_CACHE.clear()
