"""Make SIGTERM unwind the stack like SIGINT, so ``finally`` / ``except`` blocks clean up.

By default SIGTERM ends a Python process at once: no ``finally`` runs, and a ``reps`` run left
its ``.unirep-npz-*`` temporary directory behind. Inside :func:`exit_on_signals` SIGTERM raises
``SystemExit(143)`` (128 + 15, the shell's convention) in the main thread instead; SIGINT keeps
Python's ``KeyboardInterrupt``. Handlers are restored on exit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _terminate(signum, frame):
    # Ignore a second SIGTERM while the first one's cleanup runs.
    signal.signal(signum, signal.SIG_IGN)
    raise SystemExit(128 + signum)


_active = False


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` (main thread only; else no-op)."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    _active = True
    try:
        yield
    finally:
        _active = False
        signal.signal(signal.SIGTERM, previous)


def reclaim() -> None:
    """Put our SIGTERM handler back after a library replaced it (``ray.init`` installs its own,
    which ends the process without unwinding)."""
    if _active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
