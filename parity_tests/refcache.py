"""The reference's outputs on an original's weights, computed once per machine and kept verified.

``weights validate`` compares every candidate with the TF reference run on the *original*
weights over the validation panel, and those outputs are the same for every candidate. They are
stored beside the weights cache (``<cache>/reference-outputs/<key>.npz`` and ``<key>.json``),
under a key that hashes everything they are a function of: the original's array contents, the
model size, the panel's sequences, the reference's own source files, the versions of TensorFlow,
tf-keras and NumPy, and this machine's CPU model and instruction-set flags (TF's CPU kernels
round differently on different ISAs). The JSON beside each file records its SHA-256; a file that
does not match it, or whose key does not match, is discarded and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.machine import cpu_lines
from unirep_port.parity.compare import Outputs

FORMAT = 1


def _cpu() -> str:
    """CPU model and flags (:func:`unirep_port.machine.cpu_lines`; the platform string where
    there is no ``/proc/cpuinfo``)."""
    lines = cpu_lines()
    if lines is None:
        return platform.processor() or platform.machine()
    model, flags = lines
    return model + "|" + hashlib.sha256(flags.encode()).hexdigest()[:16]


def _reference_source_digest() -> str:
    """SHA-256 of the reference package's source files, read without importing TensorFlow."""
    spec = importlib.util.find_spec("unirep_port.reference_tf")
    folder = Path(next(iter(spec.submodule_search_locations)))
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def key_of(original: Mapping[str, np.ndarray], size: int, seqs: Sequence[str]) -> dict:
    """Everything the reference's outputs depend on, and its hash (``"key"``)."""
    from unirep_port.parity.oracle import params_digest
    from unirep_port.parity.shared import seqs_digest

    parts = {
        "format": FORMAT,
        "weights_sha256": params_digest(original),
        "size": int(size),
        "panel": seqs_digest(seqs),
        "n_sequences": len(seqs),
        "reference_source": _reference_source_digest(),
        "tensorflow": _version("tensorflow"),
        "tf_keras": _version("tf-keras"),
        "numpy": np.__version__,
        "cpu": _cpu(),
    }
    parts["key"] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
    return parts


def cache_root() -> Path:
    from unirep_port.weights.published import cache_dir

    return cache_dir() / "reference-outputs"


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _to_arrays(o: Outputs) -> dict[str, np.ndarray]:
    out = {"h_avg": o.h_avg, "h_final": o.h_final, "c_final": o.c_final}
    for i, (h, lg) in enumerate(zip(o.hs, o.logits)):
        out[f"hs_{i}"], out[f"logits_{i}"] = h, lg
    return out


def _from_arrays(z, n: int) -> Outputs:
    return Outputs(
        [z[f"hs_{i}"] for i in range(n)],
        [z[f"logits_{i}"] for i in range(n)],
        z["h_avg"],
        z["h_final"],
        z["c_final"],
    )


def load(parts: dict, root: Path | None = None) -> Outputs | None:
    """The stored outputs for ``parts["key"]`` if present and verified, else None.

    A file whose hash or key does not match its record is removed (it will be recomputed).
    """
    root = root or cache_root()
    npz, meta = root / f"{parts['key']}.npz", root / f"{parts['key']}.json"
    if not (npz.exists() and meta.exists()):
        return None
    try:
        record = json.loads(meta.read_text())
        ok = record.get("parts") == parts and record.get("sha256") == _file_sha(npz)
        if ok:
            with np.load(npz, allow_pickle=False) as z:
                return _from_arrays(z, parts["n_sequences"])
    except (OSError, ValueError, KeyError):
        pass
    for f in (npz, meta):
        f.unlink(missing_ok=True)
    return None


def save(parts: dict, outputs: Outputs, root: Path | None = None) -> Path:
    """Store ``outputs`` under ``parts["key"]`` (atomically: data first, then its record)."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    npz = root / f"{parts['key']}.npz"
    with atomic_file(npz) as tmp:
        np.savez(tmp, **_to_arrays(outputs))
    record = {"parts": parts, "sha256": _file_sha(npz)}
    with atomic_file(root / f"{parts['key']}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    return npz


def reference_outputs(
    original: Mapping[str, np.ndarray],
    size: int,
    seqs: Sequence[str],
    compute: Callable[[], Outputs],
    *,
    use_cache: bool = True,
    root: Path | None = None,
) -> tuple[Outputs, str]:
    """The reference's outputs and where they came from: ``"cache"`` or ``"computed"``.

    ``compute`` runs the reference (only when nothing verified is stored, or ``use_cache`` is
    False); its result is stored for the next time unless ``use_cache`` is False or the
    ``UNIREP_PORT_NO_REFERENCE_CACHE`` environment variable is set.
    """
    use_cache = use_cache and not os.environ.get("UNIREP_PORT_NO_REFERENCE_CACHE")
    parts = key_of(original, size, seqs)
    if use_cache:
        hit = load(parts, root)
        if hit is not None:
            return hit, "cache"
    out = compute()
    if use_cache:
        save(parts, out, root)
    return out, "computed"
