"""Get, check and convert UniRep weights (canonical dict: TF variable name -> float32 array)."""

from weights.check import CheckReport, check, checked
from weights.errors import WeightsError
from weights.io import FORMATS, convert, detect_format, load, save
from weights.published import cache_dir, fetch, load_published, published_tf1_npy
from weights.random import random_params

__all__ = [
    "FORMATS",
    "CheckReport",
    "WeightsError",
    "cache_dir",
    "check",
    "checked",
    "convert",
    "detect_format",
    "fetch",
    "load",
    "load_published",
    "published_tf1_npy",
    "random_params",
    "save",
]
