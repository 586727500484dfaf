"""``unirep_port.atomic``: files and folders it writes get the permissions a plain ``open()`` /
``os.mkdir()`` would give them (``0o666`` / ``0o777`` less the umask), not ``mkstemp``'s 0600.

Expected modes: POSIX ``open(2)``/``mkdir(2)`` semantics, ``mode & ~umask``; each test sets the
umask itself and restores it.
"""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from unirep_port.atomic import atomic_dir, atomic_file


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_file_honours_the_umask_like_open(tmp_path, mask):
    with _umask(mask):
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        with atomic_file(tmp_path / "atomic.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner.txt").write_text("x")
        os.mkdir(tmp_path / "plain_folder")
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert _mode(tmp_path / "folder") == _mode(tmp_path / "plain_folder") == 0o777 & ~mask


def test_an_explicit_mode_still_wins(tmp_path):
    with _umask(0o077), atomic_file(tmp_path / "a.json", mode=0o644) as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "a.json") == 0o644


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
