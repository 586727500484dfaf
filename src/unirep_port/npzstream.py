"""Write an ``.npz`` whose row count is unknown in advance, with flat memory, atomically.

Rows are appended to raw temporary files; ``close`` writes each array's ``.npy`` header and
streams the raw bytes into the zip, then renames the finished file into place. On any error
nothing is left at the destination.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format


class NpzRowWriter:
    """Append rows of fixed-width float32 arrays plus string ids, produce ``dst`` on close.

    Args:
        dst: the ``.npz`` to create; refused if it exists unless ``force``.
        widths: array name -> row width (e.g. ``{"h_avg": 1900, ...}``).
    """

    def __init__(self, dst: str | os.PathLike, widths: dict[str, int], force: bool = False):
        self.dst = Path(dst)
        if self.dst.is_dir():  # even with force: a folder is never replaced by a file
            raise IsADirectoryError(
                f"{self.dst} is a directory; -o names the .npz file to write "
                "(a directory of shards needs --engine ray or --format parquet)"
            )
        if self.dst.exists() and not force:
            raise FileExistsError(f"{self.dst} exists; pass --force to overwrite it")
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self.widths = dict(widths)
        self._tmpdir = tempfile.TemporaryDirectory(prefix=".unirep-npz-", dir=self.dst.parent)
        self._files = {k: open(Path(self._tmpdir.name) / f"{k}.raw", "wb") for k in self.widths}
        self._ids: list[str] = []
        self.n = 0

    def append(self, ids: list[str], **arrays: np.ndarray) -> None:
        for k, width in self.widths.items():
            a = np.ascontiguousarray(arrays[k], dtype=np.float32)
            if a.shape != (len(ids), width):
                raise ValueError(f"{k}: expected shape {(len(ids), width)}, got {a.shape}")
            self._files[k].write(a.tobytes())
        self._ids.extend(ids)
        self.n += len(ids)

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        for f in self._files.values():
            f.close()
        tmp_zip = Path(self._tmpdir.name) / "out.npz"
        try:
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                ids = np.array(self._ids, dtype=str)
                with zf.open("ids.npy", "w", force_zip64=True) as out:
                    npy_format.write_array(out, ids, allow_pickle=False)
                for k, width in self.widths.items():
                    header = {
                        "descr": npy_format.dtype_to_descr(np.dtype(np.float32)),
                        "fortran_order": False,
                        "shape": (self.n, width),
                    }
                    with zf.open(f"{k}.npy", "w", force_zip64=True) as out:
                        npy_format.write_array_header_2_0(out, header)
                        with open(Path(self._tmpdir.name) / f"{k}.raw", "rb") as raw:
                            while chunk := raw.read(1 << 24):
                                out.write(chunk)
            os.replace(tmp_zip, self.dst)
        finally:
            self._tmpdir.cleanup()
        return self.dst

    def abort(self) -> None:
        for f in self._files.values():
            f.close()
        self._tmpdir.cleanup()

    def __enter__(self) -> NpzRowWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
