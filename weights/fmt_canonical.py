"""The canonical file: safetensors with the canonical TF variable names as keys.

safetensors holds raw little-endian buffers and a JSON header; loading runs no code. The header
metadata is ``{"format": "unirep-port-canonical", "version": "1", "size": "<1900|256|64>"}``.

The file is written here byte by byte (the safetensors layout: u64 header length, JSON header
padded with spaces to 8 bytes, then the buffers in key order) rather than with
``safetensors.numpy.save_file``, whose metadata order varies from run to run: the bytes, and so the
SHA-256 pinned in ``manifest.json``, must be reproducible. It is read back with ``safe_open``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from safetensors import safe_open

from unirep_port.sizes import detect_size
from unirep_port.weights.errors import WeightsError

FORMAT_TAG = "unirep-port-canonical"
FORMAT_VERSION = "1"


def read(path: Path, size: int | None = None, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """Read a canonical safetensors file into {canonical key: array}.

    Args:
        path: the ``.safetensors`` file.
        size: expected model size; a file whose metadata says otherwise is an error.
        allow_pickle: unused (safetensors never unpickles).
    """
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
        params = {k: f.get_tensor(k) for k in f.keys()}
    tag = meta.get("format")
    if tag is not None and tag != FORMAT_TAG:
        raise WeightsError(f"{path}: safetensors metadata format is {tag!r}, not {FORMAT_TAG!r}")
    if size is not None and meta.get("size") not in (None, str(int(size))):
        raise WeightsError(f"{path}: metadata says size {meta['size']}, expected {size}")
    return params


def write(params: dict[str, np.ndarray], path: Path) -> None:
    """Write ``params`` (already checked) to ``path`` with the canonical metadata."""
    size = detect_size({k: v.shape for k, v in params.items()})
    meta = {"format": FORMAT_TAG, "version": FORMAT_VERSION, "size": str(size)}
    header: dict[str, object] = {"__metadata__": meta}
    buffers, offset = [], 0
    for key in sorted(params):
        buf = np.ascontiguousarray(params[key], dtype="<f4").tobytes()  # checked float32
        header[key] = {
            "dtype": "F32",
            "shape": list(params[key].shape),
            "data_offsets": [offset, offset + len(buf)],
        }
        buffers.append(buf)
        offset += len(buf)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for buf in buffers:
            f.write(buf)
