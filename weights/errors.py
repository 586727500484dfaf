"""The one error type of the ``weights`` package."""

from __future__ import annotations


class WeightsError(ValueError):
    """A weights file or parameter dict is unusable; the message names the file and every bad key."""
