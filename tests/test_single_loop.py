"""A job that fits one batch runs as one compiled loop, with the chunked engine's bits.

Real published weights (64 and 256 models) and real proteins
(``parity_tests/data/real_proteins.fasta``) plus seeded random ones. The expected values are the
chunked engine's own outputs on the same slots (``single_loop=False, tail_floor=None``), which
the parity suite checks against the TF reference; the loop must give them bit for bit, since it
runs the same step on the same rows and only the host's dispatching differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from jobs import proteins, random_seqs

from unirep_port import jax_port
from unirep_port.jax_port import engine, model


@pytest.fixture(scope="module", params=[64, 256])
def m(published, request):
    return model.as_model(jax_port.from_canonical(published(request.param)), request.param)


def _jobs():
    return {
        "1x238": random_seqs(1, 238, 0),
        "8x200": random_seqs(8, 200, 1),
        "3 real": proteins(3),  # unequal lengths: one loop when asked, padded rows masked
        "2x33": random_seqs(2, 33, 2),  # longer than one 32-token bucket
    }


@pytest.mark.parametrize("job", list(_jobs()))
def test_single_loop_gives_the_chunked_bits(m, job):
    toks = jax_port.encode(_jobs()[job])
    want = engine.run_reps(toks, m, single_loop=False, tail_floor=None)
    s0 = engine.run_stats()
    got = engine.run_reps(toks, m, single_loop=True)
    s1 = engine.run_stats()
    assert s1["loops"] == s0["loops"] + 1 and s1["chunks"] == s0["chunks"]  # no chunk ran
    assert s1["tokens"] - s0["tokens"] == sum(len(t) for t in toks)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_small_equal_jobs_take_the_loop_and_mixed_big_ones_the_chunks(m):
    """The default (``single_loop=None``): one loop where everything fits the first batch and
    rows finish together; the chunked engine where sequences wait for a slot."""
    s0 = engine.run_stats()
    engine.run_reps(jax_port.encode(random_seqs(8, 200, 1)), m)
    s1 = engine.run_stats()
    assert s1["loops"] == s0["loops"] + 1 and s1["chunks"] == s0["chunks"]
    engine.run_reps(jax_port.encode(proteins(40)), m)
    s2 = engine.run_stats()
    assert s2["loops"] == s1["loops"] and s2["chunks"] > s1["chunks"]


def test_loop_compiles_once_per_length_bucket(m):
    """The trip count is an argument: another length in the same bucket reuses the executable."""
    engine.run_reps(jax_port.encode(random_seqs(2, 150, 3)), m, single_loop=True)
    before = engine.compile_count()
    engine.run_reps(jax_port.encode(random_seqs(2, 190, 4)), m, single_loop=True)  # bucket 256 too
    assert engine.compile_count() == before


def test_length_bucket_is_a_power_of_two_that_holds_the_steps():
    assert [engine.length_bucket(n) for n in (1, 32, 33, 239, 256, 257)] == [
        32,
        32,
        64,
        256,
        256,
        512,
    ]


def test_a_job_that_does_not_fit_is_refused_by_name(m):
    toks = jax_port.encode(proteins(40))
    with pytest.raises(ValueError, match="do not fit"):
        engine.run_reps(toks, m, batch_size=32, single_loop=True)


def test_weights_are_placed_once_per_model_and_mesh(m):
    """A call of a few milliseconds must not re-place every array of the model each time."""
    mesh = engine.make_mesh()
    placed = m.on_devices(mesh)
    assert m.on_devices(engine.make_mesh()) is placed  # the same devices: the same arrays
    for a, b in zip(placed.cells, m.weights.cells):
        np.testing.assert_array_equal(np.asarray(a.wh), np.asarray(b.wh))


def test_no_sequences_give_empty_reps(m):
    h_avg, h_final, c_final = engine.run_reps([], m)
    assert h_avg.shape == h_final.shape == c_final.shape == (0, m.hidden)


CHILD = (
    "import json, sys\n"
    "from unirep_port.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "from unirep_port.jax_port import compile_cache, engine\n"
    "print('COUNTS', json.dumps({'rc': rc, 'loops': engine.run_stats()['loops'],"
    " **compile_cache.counts()}))\n"
)


def test_a_fresh_process_loads_the_loop_and_compiles_nothing(published, tmp_path):
    """The single loop's executable is kept by jax_port.aot_cache like the chunk's: a second
    fresh ``unirep-port reps`` on one sequence compiles nothing and gives the same bits."""
    import json
    import os
    import subprocess
    import sys

    from unirep_port.weights import published as pub

    published(64)  # fetched (or already cached) in the real cache
    home = pub.cache_sharing_weights(tmp_path / "cache")
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">p\n" + proteins(1)[0] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "UNIREP_PORT_NO_COMPILE_CACHE"}
    env["UNIREP_PORT_CACHE"] = str(home)
    counts = []
    for out in ("a.npz", "b.npz"):
        argv = ["reps", str(fasta), "-o", str(tmp_path / out), "--size", "64", "--quiet"]
        res = subprocess.run(
            [sys.executable, "-c", CHILD, *argv], env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr[-3000:]
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("COUNTS ")][-1]
        counts.append(json.loads(line.split(" ", 1)[1]))
    first, second = counts
    assert first["loops"] == second["loops"] == 1  # the job ran as one loop
    assert first["aot_stores"] >= 1 and second["compiles"] == 0
    assert second["aot_hits"] == first["aot_stores"]
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        for k in ("h_avg", "h_final", "c_final"):
            np.testing.assert_array_equal(a[k], b[k])
