"""Progress of a long run: a live bar on a terminal, a few plain summary lines in a log.

tqdm redraws its bar with carriage returns; written to a file or a CI log that is hundreds of
``\\r`` updates per run. :func:`progress` gives tqdm only when stderr is a TTY; otherwise a
:class:`LogProgress` that prints one line when the run starts, at most one line per ``every``
seconds while it runs, and one summary line at the end ("done", or "failed after" for a run
that stopped on an error: :func:`fail`).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class LogProgress:
    """The no-TTY stand-in for a tqdm bar: ``update(n)``, ``close()``, newline-ended lines."""

    def __init__(self, desc: str, unit: str, every: float = 60.0, stream: TextIO | None = None):
        self.desc, self.unit, self.every = desc, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self._t0 = self._last = time.perf_counter()
        self._closed = False
        self._line("started")

    def _line(self, what: str) -> None:
        print(f"{self.desc}: {what}", file=self.stream, flush=True)

    def _rate(self) -> str:
        dt = time.perf_counter() - self._t0
        return f"{self.n} {self.unit} in {dt:.1f} s ({self.n / max(dt, 1e-9):.0f} {self.unit}/s)"

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._line(self._rate())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line(f"done, {self._rate()}")

    def fail(self) -> None:
        """End the log of a run that stopped on an error: no "done" line."""
        if not self._closed:
            self._closed = True
            self._line(f"failed after {self._rate()}")


class _Off:
    n = 0

    def update(self, n: int = 1) -> None:
        self.n += int(n)

    def close(self) -> None:
        pass

    def fail(self) -> None:
        pass


def fail(bar) -> None:
    """End ``bar`` (from :func:`progress`) for a run that stopped on an error: a log says it
    failed instead of "done"; a tqdm bar is closed where it stands."""
    getattr(bar, "fail", bar.close)()


def progress(desc: str, unit: str = "tok", disable: bool = False, stream: TextIO | None = None):
    """A tqdm bar on a TTY, a :class:`LogProgress` otherwise, a no-op when ``disable``."""
    if disable:
        return _Off()
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(desc=desc, unit=unit, unit_scale=True, file=stream)
    return LogProgress(desc, unit, stream=stream)
