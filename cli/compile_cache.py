"""The CLI's persistent compilation cache: ``<cache>/xla-cache`` beside the weights, on by default.

``--no-compile-cache`` or ``UNIREP_PORT_NO_COMPILE_CACHE=1`` turns it off
(:mod:`unirep_port.jax_port.compile_cache` does the work).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--no-compile-cache`` to a subcommand that runs the port."""
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use the persistent XLA compilation cache (<cache>/xla-cache; also "
        "UNIREP_PORT_NO_COMPILE_CACHE=1)",
    )


def setup(args: argparse.Namespace) -> Path | None:
    """Turn the cache on unless the flag or the environment says not to; its directory or None.
    Off, the engine keeps no executable on disk either (its library default, the same folder:
    :func:`unirep_port.jax_port.compile_cache.executables_dir`), here and in the processes this
    one starts (Ray workers): the environment variable is set for them."""
    from unirep_port.jax_port import compile_cache

    if getattr(args, "no_compile_cache", False) or compile_cache.off_by_env():
        os.environ[compile_cache.ENV_OFF] = "1"
        return None
    return compile_cache.enable(compile_cache.default_dir())
