"""Golden fixtures: reference outputs on a fixed panel, made once by the pinned TensorFlow.

``parity_tests/golden/golden_<size>.npz`` holds per-position hidden states and logits plus the
three reps for :func:`golden_panel`; ``golden_<size>.json`` records where they came from (TF and
tf-keras versions, the SHA-256 of the canonical weights file, the panel and its seed). The port is
checked against them without TensorFlow in the ordinary test run; the reference is checked to
still reproduce them (a drift alarm for TensorFlow upgrades).

Regenerate (only on purpose, e.g. after a deliberate TF upgrade):
``python -m parity_tests.golden --size all``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from parity_tests.compare import Outputs
from parity_tests.panel import EVERY_LETTER, random_protein
from weights.published import sha256

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
SEED = 20190326  # the UniRep preprint's bioRxiv date, a fixed seed for the random members


def golden_panel() -> list[tuple[str, str]]:
    """Five sequences: avGFP wild type, every letter, lengths 1 and 10, a random 64-mer."""
    import random

    from unirep_port.avgfp import WILD_TYPE

    rng = random.Random(SEED)
    return [
        ("avGFP_WT", WILD_TYPE),
        ("every_letter", EVERY_LETTER * 3),
        ("len1_M", "M"),
        ("len10", random_protein(10, rng)),
        ("rand64", random_protein(64, rng)),
    ]


def make_golden(size: int, directory: Path = GOLDEN_DIR) -> Path:
    """Run the TF reference on the golden panel with the published weights and store it."""
    import tensorflow as tf

    import reference_tf
    import weights
    from parity_tests.engine import tf_outputs

    path = weights.fetch(size)
    panel = golden_panel()
    with reference_tf.Babbler(weights.load(path), size=size) as babbler:
        out = tf_outputs(babbler, [s for _, s in panel])
    arrays = {"h_avg": out.h_avg, "h_final": out.h_final, "c_final": out.c_final}
    for i, (hs, lg) in enumerate(zip(out.hs, out.logits)):
        arrays[f"hs_{i}"], arrays[f"logits_{i}"] = hs, lg
    import tf_keras

    meta = {
        "size": size,
        "panel": [{"id": i, "sequence": s} for i, s in panel],
        "seed": SEED,
        "producer": "reference_tf.Babbler.run_batch (TF1 graph mode via tf.compat.v1)",
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "numpy": np.__version__,
        "weights_file": Path(path).name,
        "weights_sha256": sha256(path),
        "created": _dt.date.today().isoformat(),
        "command": "python -m parity_tests.golden --size " + str(size),
    }
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"golden_{size}.npz"
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    (directory / f"golden_{size}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target


def load_golden(size: int, directory: Path = GOLDEN_DIR) -> tuple[Outputs, dict]:
    """The stored reference outputs and their metadata."""
    meta = json.loads((directory / f"golden_{size}.json").read_text())
    with np.load(directory / f"golden_{size}.npz", allow_pickle=False) as z:
        n = len(meta["panel"])
        out = Outputs(
            hs=[z[f"hs_{i}"] for i in range(n)],
            logits=[z[f"logits_{i}"] for i in range(n)],
            h_avg=z["h_avg"],
            h_final=z["h_final"],
            c_final=z["c_final"],
        )
    return out, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="all", choices=["all", "1900", "256", "64"])
    args = p.parse_args(argv)
    sizes = [1900, 256, 64] if args.size == "all" else [int(args.size)]
    for size in sizes:
        print(make_golden(size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
