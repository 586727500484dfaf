"""Teacher-forced step parity: both implementations advance one step from the same state.

A free-running comparison over a long sequence mixes two things: whether each step computes
the same function, and how much the recurrence amplifies float32 rounding. On long random
sequences the 1900 model has stretches where one step's rounding (about 1.3e-6 in h for TF and
the port alike, measured) grows to 1e-4 within tens of steps, so free-running TF and port drift
apart by more than the tolerance although each is as accurate as float32 allows (TF itself is
8.6e-5 from the exact result at position 1,853 of the panel's random 2,000-mer).

Here every position ``t`` starts from the float64 oracle's state after ``t - 1`` (rounded to
float32), and TF's one step is compared with the port's one step. Nothing is amplified, so the
free-running tolerance applies unchanged, and any porting bug in the step (gates, weight norm,
embedding, carry order, start token) still shows at full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unirep_port import alphabet
from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY


def _tf_steps(babbler, tokens, c_prev, h_prev):
    """TF one step per row: tokens (N,), states (N, layers, H) -> (h (N, H), c (N, H))."""
    g = babbler._g  # noqa: SLF001 - the reference's own graph, fed as the original API feeds it
    n = len(tokens)
    pad = n % 2  # oneDNN rounds the last row of an odd batch differently: keep batches even
    tok = np.concatenate([tokens, tokens[-1:]]) if pad else tokens
    cp = np.concatenate([c_prev, c_prev[-1:]]) if pad else c_prev
    hp = np.concatenate([h_prev, h_prev[-1:]]) if pad else h_prev
    layers = cp.shape[1]
    if layers == 1:
        state = (cp[:, 0], hp[:, 0])
    else:
        state = (tuple(cp[:, i] for i in range(layers)), tuple(hp[:, i] for i in range(layers)))
    out, final = babbler._session().run(  # noqa: SLF001
        [g.output, g.final_state],
        feed_dict={
            g.x: tok[:, None].astype(np.int32),
            g.initial_state: state,
            g.batch_size: len(tok),
        },
    )
    c_last = final[0] if layers == 1 else final[0][-1]
    return out[:n, 0], c_last[:n]


def _port_steps(prep, tokens, c_prev, h_prev):
    import jax
    import jax.numpy as jnp

    from jax_port import model

    carries = tuple(
        (jnp.asarray(c_prev[:, i]), jnp.asarray(h_prev[:, i])) for i in range(c_prev.shape[1])
    )
    with jax.default_matmul_precision("highest"):
        _, h, c = jax.jit(model.stack_step)(prep, jnp.asarray(tokens, jnp.int32), carries)
    return np.asarray(h), np.asarray(c)


@dataclass
class StepEvidence:
    """What the teacher-forced check and the float64 oracle gave for one sequence."""

    h_err: np.ndarray  # (L+1,) max |h_tf - h_port| over units, one step from the same state
    c_err: np.ndarray  # (L+1,) same for the last layer's c, relative to that step's max |c|
    exact_hs: np.ndarray  # (L+1, H) float64 oracle output h
    exact_logits: np.ndarray  # (L+1, 25) float64
    exact_reps: dict  # h_avg, h_final, c_final (H,) float64


def step_errors(babbler, reference_params, port_params, seq: str, size: int) -> StepEvidence:
    """Per-position teacher-forced errors of one sequence, with the float64 oracle's outputs.

    Every position ``t`` starts both implementations from the oracle's state after ``t - 1``
    (rounded to float32) and compares their one step; the oracle's free-running outputs come back
    too, so callers can measure each implementation's drift from float64.
    """
    import jax_port
    from jax_port import model
    from parity_tests.oracle import oracle_states

    cs, hs = oracle_states(reference_params, seq, size)  # (L+1, layers, H) each
    tokens = alphabet.tokenize(seq)
    c_prev = np.concatenate([np.zeros_like(cs[:1]), cs[:-1]]).astype(np.float32)
    h_prev = np.concatenate([np.zeros_like(hs[:1]), hs[:-1]]).astype(np.float32)
    h_tf, c_tf = _tf_steps(babbler, tokens, c_prev, h_prev)
    prep = model.prepare_host(jax_port.load_params(port_params))
    h_jx, c_jx = _port_steps(prep, tokens, c_prev, h_prev)
    h_err = np.abs(h_tf.astype(np.float64) - h_jx).max(axis=1)
    scale = np.maximum(np.abs(c_tf).max(axis=1), np.finfo(np.float32).tiny)
    c_err = np.abs(c_tf.astype(np.float64) - c_jx).max(axis=1) / scale
    exact_h = hs[:, -1]  # (L+1, H)
    dw = np.asarray(reference_params[DENSE_W_KEY], np.float64)
    db = np.asarray(reference_params[DENSE_B_KEY], np.float64)
    return StepEvidence(
        h_err=h_err,
        c_err=c_err,
        exact_hs=exact_h,
        exact_logits=exact_h @ dw + db,  # (L+1, H) @ (H, 25) -> (L+1, 25)
        exact_reps={"h_avg": exact_h.mean(axis=0), "h_final": exact_h[-1], "c_final": cs[-1, -1]},
    )
