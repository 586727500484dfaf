"""Get, check and convert UniRep weights (canonical dict: TF variable name -> float32 array)."""

from unirep_port.weights.check import CheckReport, check, checked
from unirep_port.weights.errors import WeightsError
from unirep_port.weights.io import FORMATS, convert, detect_format, load, save
from unirep_port.weights.published import cache_dir, fetch, load_published, published_tf1_npy
from unirep_port.weights.random import random_params

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
