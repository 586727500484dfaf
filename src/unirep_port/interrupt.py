"""Make SIGTERM unwind the stack like SIGINT, so ``finally`` / ``except`` blocks clean up.

By default SIGTERM ends a Python process at once: no ``finally`` runs, and a ``reps`` run left
its ``.unirep-npz-*`` temporary directory behind. Inside :func:`exit_on_signals` SIGTERM raises
``SystemExit(143)`` (128 + 15, the shell's convention) in the main thread instead; SIGINT keeps
Python's ``KeyboardInterrupt``. Handlers are restored on exit.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from collections.abc import Iterator

RETRY_S = 0.05  # delay before a signal that arrived at an unsafe point is delivered again


def _in_swallowing_frame(frame) -> bool:
    """Is ``frame`` (or a caller) code whose exceptions Python prints and ignores?

    A signal handler runs in whatever Python code the main thread is executing; if that is a
    garbage-collector callback (XLA registers one) or a ``__del__``, a ``SystemExit`` raised
    there is reported as "Exception ignored in ..." and the run simply goes on (measured: a
    ``reps`` process killed with SIGTERM then exited 0, its temporaries finished).
    """
    codes = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _terminate(signum, frame):
    if _in_swallowing_frame(frame):
        # Not here: deliver the same signal again in a moment, at an ordinary point.
        t = threading.Timer(RETRY_S, os.kill, (os.getpid(), signum))
        t.daemon = True
        t.start()
        return
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
