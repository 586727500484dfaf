"""TAPE's PyTorch UniRep (``tape/models/modeling_unirep.py``): a ``state_dict`` saved by torch.

TAPE has only the 1900 model. Its cell keeps each TF weight ``w (n_in, n_out)`` with gain
``g (n_out,)`` as a weight-normed ``nn.Linear``: ``weight_v = w.T (n_out, n_in)`` and
``weight_g = g[:, None] (n_out, 1)``; torch's weight norm (dim 0) divides each row of ``weight_v``
by its norm, which is TF's ``l2_normalize(w, axis=0)`` on the columns (unirep.py L113-125). The TF
bias ``b`` is the bias of ``wh``. ``feedforward`` is the logit layer (``weight = w.T``).
Keys: ``unirep.embed_matrix.weight``, ``unirep.encoder.mlstm_cell.<wx|wh|wmx|wmh>.weight_<g|v>``,
``unirep.encoder.mlstm_cell.wh.bias``, ``feedforward.weight``, ``feedforward.bias``. A
``UniRepModel`` dict (no ``unirep.`` prefix, no ``feedforward``) is accepted too; the logit layer
is then reported missing. torch is optional and imported lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY, EMBED_KEY, SIZES, detect_size
from unirep_port.weights.errors import WeightsError

_CELL = "encoder.mlstm_cell."
_MATS = ("wx", "wh", "wmx", "wmh")


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise WeightsError(
            "the tape format needs PyTorch: pip install 'unirep-port[torch]'"
        ) from exc
    return torch


def from_tape(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TAPE state_dict arrays -> canonical 1900 keys; unknown keys are kept for check()."""
    m = SIZES[1900]
    prefix = "unirep." if any(k.startswith("unirep.") for k in sd) else ""
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(key: str) -> np.ndarray | None:
        if key in sd:
            used.add(key)
            return sd[key]
        return None

    if (emb := take(prefix + "embed_matrix.weight")) is not None:
        out[EMBED_KEY] = emb  # (26, 10), same layout
    for name in _MATS:
        v = take(f"{prefix}{_CELL}{name}.weight_v")  # (n_out, n_in)
        g = take(f"{prefix}{_CELL}{name}.weight_g")  # (n_out, 1)
        if v is not None:
            out[m.cell_key(0, name)] = np.ascontiguousarray(v.T)  # -> (n_in, n_out)
        if g is not None:
            out[m.cell_key(0, "g" + name[1:])] = np.ascontiguousarray(g.reshape(-1))  # -> (n_out,)
    if (b := take(f"{prefix}{_CELL}wh.bias")) is not None:
        out[m.cell_key(0, "b")] = b  # (4H,)
    if (w := take("feedforward.weight")) is not None:
        out[DENSE_W_KEY] = np.ascontiguousarray(w.T)  # (25, H) -> (H, 25)
    if (fb := take("feedforward.bias")) is not None:
        out[DENSE_B_KEY] = fb
    for key in sd:
        if key not in used:
            out[key] = sd[key]
    return out


def to_tape(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical (checked) parameters of the 1900 model -> ``UniRepForLM`` state_dict arrays."""
    size = detect_size({k: v.shape for k, v in params.items()})
    if size != 1900:
        raise WeightsError(
            f"the tape format holds only the 1900 model (TAPE has no mLSTM stacks); size {size}"
        )
    m = SIZES[1900]
    sd = {"unirep.embed_matrix.weight": params[EMBED_KEY]}
    for name in _MATS:
        w = params[m.cell_key(0, name)]  # (n_in, n_out)
        g = params[m.cell_key(0, "g" + name[1:])]  # (n_out,)
        sd[f"unirep.{_CELL}{name}.weight_g"] = np.ascontiguousarray(g[:, None])  # (n_out, 1)
        sd[f"unirep.{_CELL}{name}.weight_v"] = np.ascontiguousarray(w.T)  # (n_out, n_in)
    sd[f"unirep.{_CELL}wh.bias"] = params[m.cell_key(0, "b")]
    sd["feedforward.weight"] = np.ascontiguousarray(params[DENSE_W_KEY].T)  # (25, H)
    sd["feedforward.bias"] = params[DENSE_B_KEY]
    return sd


def read(path: Path, size: int | None = None, allow_pickle: bool = False) -> dict:
    """Read a torch-saved state_dict (``torch.load(weights_only=True)``; no arbitrary code)."""
    if size is not None and int(size) != 1900:
        raise WeightsError(f"{path}: the tape format holds only the 1900 model, not size {size}")
    torch = _torch()
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot load torch state_dict ({exc})") from exc
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: expected a state_dict (dict), got {type(sd).__name__}")
    arrays = {}
    for key, val in sd.items():
        if not isinstance(val, torch.Tensor):
            raise WeightsError(f"{path}: entry {key!r} is not a tensor")
        arrays[key] = val.detach().cpu().numpy()
    return from_tape(arrays)


def write(params: dict[str, np.ndarray], path: Path) -> None:
    """Save ``params`` (size 1900) as a ``UniRepForLM`` state_dict with ``torch.save``."""
    torch = _torch()
    sd = {k: torch.from_numpy(np.array(v)) for k, v in to_tape(params).items()}
    torch.save(sd, path)
