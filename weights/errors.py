"""The one error type of the ``weights`` package."""

from __future__ import annotations


class WeightsError(ValueError):
    """Unusable weights file or parameter dict; the message names the file and every bad key."""
