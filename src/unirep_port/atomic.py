"""Atomic writes: build the result under a temporary name next to ``dst``, then rename it.

On any error the temporary file or folder is removed, so nothing half-written is left behind.
The one implementation of the kit: weights, parity reports, golden fixtures, evotune history and
benchmark results all write through it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def _fresh(dst: Path, suffix: str, make) -> Path:
    """A new name ``.<dst name>.<random><suffix>`` beside ``dst``, created by ``make(path)``.

    ``make`` is ``os.open(..., O_CREAT | O_EXCL, 0o666)`` or ``os.mkdir(..., 0o777)``: the kernel
    applies the umask, so the result has the mode a plain ``open()`` / ``mkdir`` would give it
    (``tempfile.mkstemp``/``mkdtemp`` make 0600/0700, which a shared folder cannot serve).
    """
    for _ in range(100):
        path = dst.parent / f".{dst.name}.{secrets.token_hex(4)}{suffix}"
        try:
            make(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name beside {dst}")


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))


def _new_dir(path: Path) -> None:
    os.mkdir(path, 0o777)


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
    gets the mode ``open()`` would give a new file (``0o666`` less the umask: ``0o644`` under the
    usual ``022``); ``mode`` (e.g. ``0o644``), when given, is applied before the rename instead.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(dst, f".tmp{dst.suffix}", _new_file)
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
    The folder gets the mode ``mkdir`` would give it (``0o777`` less the umask).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(dst, ".tmp", _new_dir)
    old: Path | None = None
    try:
        yield tmp
        if dst.exists() or dst.is_symlink():
            old = _fresh(dst, ".old", _new_dir)
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
