"""Where the parity suite writes its outputs (reports, traces, the portability matrix).

Never the repository root or the current directory: ``$PARITY_REPORT_DIR`` when set, else the
``results/`` folder beside this package (``parity_tests/results/`` in a checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def results_dir() -> Path:
    """``$PARITY_REPORT_DIR`` if set and non-empty, else ``parity_tests/results/``."""
    return Path(os.environ.get("PARITY_REPORT_DIR") or RESULTS_DIR)
