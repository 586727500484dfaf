"""Start TensorFlow the way the reference needs it, and quietly.

The TF1 RNN cells come from tf-keras, which TensorFlow only uses when ``TF_USE_LEGACY_KERAS=1`` is
set before its first import; ``TF_CPP_MIN_LOG_LEVEL=2`` drops INFO and WARNING lines of TF's C++
logging. Neither silences what TF 2.21 prints while its shared libraries load, before absl's
logging is initialised: an absl preamble and, on x86-64, an INFO line that oneDNN is on (twice,
once per library); the full ``tensorflow`` wheel on a machine without an NVIDIA driver adds a
"no cuda drivers" INFO line per library and a cuInit error when devices are first listed.
:func:`import_tensorflow` captures file descriptor 2 during the import (and that first device
listing) and writes back every line except exactly those known banners (:data:`BANNERS`); if
the import fails, everything captured is written back unfiltered. Nothing here imports jax.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile

# Lines TensorFlow prints on every start that carry no information about this run. Each pattern
# matches one whole line: absl's fixed preamble (it announces where early logs go, not a problem)
# and one INFO ("I" + date) message; no TF warning or error line can match.
BANNERS = (
    re.compile(
        r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    ),
    re.compile(r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"),
    # The full `tensorflow` wheel (the reference extra) on a machine without an NVIDIA driver:
    # an INFO line per library at import, and one E line when the devices are first listed --
    # exactly this text (no driver: error 303), which :func:`import_tensorflow` provokes
    # inside the capture. Any other cuInit failure is kept.
    re.compile(
        r"I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your "
        r"machine, GPU will not be used\."
    ),
    re.compile(
        r"E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: INTERNAL: CUDA "
        r"error: Failed call to cuInit: UNKNOWN ERROR \(303\)"
    ),
)


def filter_banners(text: str) -> str:
    """``text`` without the lines that fully match one of :data:`BANNERS`."""
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not any(p.fullmatch(line.rstrip("\r\n")) for p in BANNERS)
    ]
    return "".join(kept)


@contextlib.contextmanager
def _stderr_filtered():
    """Send fd 2 to a temporary file; on exit write back what came, banners dropped on success."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            text = text if failed else filter_banners(text)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


def quiet_import(name: str):
    """Import module ``name`` with its start-up banners dropped from stderr (see module doc)."""
    if name in sys.modules:
        return sys.modules[name]
    with _stderr_filtered():
        return importlib.import_module(name)


def import_tensorflow():
    """``import tensorflow``, after setting the reference's environment defaults, quietly.

    Defaults only: a caller's own ``TF_USE_LEGACY_KERAS``/``TF_CPP_MIN_LOG_LEVEL`` win.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_filtered():
        tf = importlib.import_module("tensorflow")
        tf.config.list_physical_devices()  # device discovery (cuInit) prints here, not later
    return tf
