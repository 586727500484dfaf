"""Atomic writes: build the result under a temporary name next to ``dst``, then rename it.

On any error the temporary file or folder is removed, so nothing half-written is left behind.
The one implementation of the kit: weights, parity reports, golden fixtures, evotune history and
benchmark results all write through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(dst: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``dst``'s folder; on success ``os.replace`` it onto ``dst``.

    The temporary name keeps ``dst``'s suffix (``x.npz`` -> ``.x.npz.<random>.tmp.npz``), so
    writers that append a suffix they miss (``np.savez``) write the yielded path itself. The file
    is created ``0600`` (``tempfile.mkstemp``); ``mode`` (e.g. ``0o644``) is applied before the
    rename when given.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".tmp{dst.suffix}", dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``dst``; on success rename it to ``dst``.

    An existing ``dst`` (file or folder) is moved aside first and deleted only after the rename.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    old: Path | None = None
    try:
        yield tmp
        if dst.exists() or dst.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
            old.rmdir()
            os.replace(dst, old)
        os.replace(tmp, dst)
    except BaseException:
        _remove(tmp)
        if old is not None and not dst.exists():
            os.replace(old, dst)
            old = None
        raise
    finally:
        if old is not None:
            _remove(old)
