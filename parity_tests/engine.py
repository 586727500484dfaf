"""Run the TF reference and the JAX port on the same panel and collect :class:`Outputs`.

The reference side is the reference's batched verification path (``Babbler.run_batch``, one
``session.run`` per batch; equal to ``get_rep`` per sequence, which ``tests/test_reference*``
checks). The port side uses the port's public functions: ``get_hidden_states`` and ``get_logits``
(per position) and ``get_reps`` (the fast chunked path users run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from parity_tests.compare import Outputs, ParityResult, compare, over_tolerance
from unirep_port.alphabet import pad_batch, validate_sequences


def tf_outputs(babbler, seqs: Sequence[str], batch_size: int = 8) -> Outputs:
    """Reference outputs, batching sequences of similar length together."""
    seqs = validate_sequences(seqs)
    n, hid = len(seqs), babbler.hidden
    order = np.argsort([len(s) for s in seqs], kind="stable")
    hs: list = [None] * n
    logits: list = [None] * n
    reps = np.zeros((3, n, hid), np.float32)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        tokens, lengths = pad_batch([seqs[i] for i in idx])
        r = babbler.run_batch(tokens, lengths)
        for row, i in enumerate(idx):
            hs[i] = r["hs"][row, : lengths[row]]
            logits[i] = r["logits"][row, : lengths[row]]
        reps[0, idx], reps[1, idx], reps[2, idx] = r["h_avg"], r["h_final"], r["c_final"]
    return Outputs(hs, logits, reps[0], reps[1], reps[2])


def jax_outputs(params, seqs: Sequence[str], size: int, batch_size: int = 16) -> Outputs:
    """Port outputs through its public API (``params``: canonical dict or port Params)."""
    import jax_port

    seqs = validate_sequences(seqs)
    hs = [
        np.asarray(x) for x in jax_port.get_hidden_states(seqs, params, size, batch_size=batch_size)
    ]
    logits = [np.asarray(x) for x in jax_port.get_logits(seqs, params, size, batch_size=batch_size)]
    h_avg, h_final, c_final = jax_port.get_reps(seqs, params, size)
    return Outputs(hs, logits, np.asarray(h_avg), np.asarray(h_final), np.asarray(c_final))


def run_parity(
    reference_params: Mapping[str, np.ndarray],
    port_params,
    panel: Sequence[tuple[str, str]],
    size: int,
    babbler=None,
    use_oracle: bool = True,
) -> tuple[ParityResult, Outputs, Outputs]:
    """TF reference on ``reference_params`` vs the port on ``port_params`` over ``panel``."""
    import reference_tf

    ids = [i for i, _ in panel]
    seqs = [s for _, s in panel]
    own = babbler is None
    babbler = babbler or reference_tf.Babbler(reference_params, size=size)
    try:
        ref = tf_outputs(babbler, seqs)
    finally:
        if own:
            babbler.close()
    port = jax_outputs(port_params, seqs, size)
    result = compare(ref, port, ids, size)
    if use_oracle and not result.ok:
        # Ask the float64 oracle about the sequences over tolerance (see compare's docstring).
        from parity_tests.oracle import oracle_outputs

        suspects = over_tolerance(result)
        oracle = {i: oracle_outputs(reference_params, [seqs[i]], size) for i in suspects}
        result = compare(ref, port, ids, size, oracle=oracle)
    return result, ref, port
