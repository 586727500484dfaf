"""``--device cpu|gpu``: the platforms JAX runs on, set through JAX's configuration.

The ``JAX_PLATFORMS`` variable would name them too, but the CLI leaves the process environment
alone: both ``reps`` paths (one file, and the local sharded engine) call :func:`use_platform`
before JAX's first computation. Ray workers are other processes and get theirs from
``embedding.ray_engine``'s runtime environment.
"""

from __future__ import annotations

PLATFORMS = {"cpu": "cpu", "gpu": "cuda"}  # --device -> JAX's platform name


def use_platform(device: str) -> None:
    """Run JAX on ``device`` (``cpu`` or ``gpu``) only."""
    import jax

    jax.config.update("jax_platforms", PLATFORMS[device])
