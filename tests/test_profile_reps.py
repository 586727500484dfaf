"""``unirep-port profile --impl reps``: a fresh ``reps`` process split into phases that add up."""

from __future__ import annotations

import pstats
from pathlib import Path

import numpy as np

from unirep_port import cli
from unirep_port.fasta import read_fasta

ROOT = Path(__file__).resolve().parents[1]


def test_profile_reps_phases_add_up_and_the_output_is_the_reps(tmp_path, published, capsys):
    from unirep_port import jax_port

    recs = list(read_fasta(str(ROOT / "parity_tests" / "data" / "real_proteins.fasta")))[:5]
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in recs))
    out, prof = tmp_path / "o.npz", tmp_path / "r.prof"
    args = f"{fasta} -o {out} --size 64 --quiet"
    rc = cli.main(["profile", "--impl", "reps", "--reps-args", args, "-o", str(prof)])
    text = capsys.readouterr().out
    assert rc == 0, text
    for phase in ("imports", "weight_load", "engine_steady", "engine_tail", "output_write"):
        assert phase in text
    assert "XLA compiles" in text and pstats.Stats(str(prof)).total_tt > 0
    want = jax_port.get_reps([s for _, s in recs], published(64), 64)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["h_avg"], want[0])  # it really ran reps


def test_profile_reps_breakdown_sums_to_the_wall(tmp_path, published):
    from unirep_port.benchmarks.profile_reps import profile_reps

    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMKTAYIAKQR\n>b\nGS\n")
    res = profile_reps(
        [str(fasta), "-o", str(tmp_path / "o.npz"), "--size", "64", "--quiet"], tmp_path / "r.prof"
    )
    ph = res["phases_s"]
    assert abs(sum(ph.values()) - res["wall_s"]) < 1e-6
    known = {k: v for k, v in ph.items() if k != "other"}
    assert all(v >= -1e-3 for v in known.values()), ph  # no phase counted twice
    assert res["engine"]["tokens"] == 11 + 3  # start tokens included
