"""Teacher-forced step parity: both implementations advance one step from the same state.

A free-running comparison over a long sequence mixes two things: whether each step computes
the same function, and how much the recurrence amplifies float32 rounding. On long random
sequences the 1900 model has stretches where one step's rounding (about 1.3e-6 in h for TF and
the port alike, measured) grows to 1e-4 within tens of steps, so free-running TF and port drift
apart by more than the tolerance although each is as accurate as float32 allows (TF itself is
8.6e-5 from the exact result at position 1,853 of the panel's random 2,000-mer).

Here every position ``t`` starts from the float64 oracle's state after ``t - 1`` (rounded to
float32), and TF's one step and the port's one step are each compared with the float64 step from
that same state. Nothing is amplified, so the bound is what one step's rounding allows, derived at
run time from float32 members that sum in other orders (:func:`step_errors`), and any porting bug
in the step (gates, weight norm, embedding, carry order, start token) still shows at full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unirep_port import alphabet
from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY


def _tf_steps(babbler, tokens, c_prev, h_prev):
    """TF one step per row: tokens (N,), states (N, layers, H) -> (h (N, H), c (N, H))."""
    g = babbler._g  # the reference's own graph, fed as the original API feeds it
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
    out, final = babbler._session().run(
        [g.output, g.final_state],
        feed_dict={
            g.x: tok[:, None].astype(np.int32),
            g.initial_state: state,
            g.batch_size: len(tok),
        },
    )
    c_last = final[0] if layers == 1 else final[0][-1]
    return out[:n, 0], c_last[:n]


_STACK_STEP = None  # model.stack_step, jitted once (its cache keys on the row count)


def _rows_bucket(n: int) -> int:
    """Rows the port's step runs with for ``n`` positions: the next power of two (at least 8).

    One compiled step per bucket instead of one per sequence length; the padding rows repeat
    the last row and are dropped. XLA's CPU kernels round a row alike in any batch of two or more
    rows (``tests/test_engine_tail.py`` checks it bitwise), so a row's step does not depend on
    the bucket.
    """
    return max(8, 1 << (max(n, 1) - 1).bit_length())


def _port_steps(prep, tokens, c_prev, h_prev):
    """The port's one step per row: tokens (N,), states (N, layers, H) -> (h (N, H), c (N, H))."""
    import jax
    import jax.numpy as jnp

    from unirep_port.jax_port import model

    global _STACK_STEP
    if _STACK_STEP is None:
        _STACK_STEP = jax.jit(model.stack_step)
    n = len(tokens)
    extra = _rows_bucket(n) - n

    def pad(a):
        return np.concatenate([a, np.repeat(a[-1:], extra, axis=0)]) if extra else a

    tok, cp, hp = pad(np.asarray(tokens)), pad(c_prev), pad(h_prev)
    carries = tuple((jnp.asarray(cp[:, i]), jnp.asarray(hp[:, i])) for i in range(cp.shape[1]))
    with jax.default_matmul_precision("highest"):
        _, h, c = _STACK_STEP(prep, jnp.asarray(tok, jnp.int32), carries)
    return np.asarray(h)[:n], np.asarray(c)[:n]


@dataclass
class StepEvidence:
    """What the teacher-forced check and the float64 oracle gave for one sequence.

    Errors are against the float64 step from the same float32 state, per position: ``*_h`` the
    largest ``|h - h_exact|`` over units, ``*_c`` the same for the last layer's ``c`` relative to
    that step's largest ``|c_exact|``. Bounds are derived at run time (see :func:`step_errors`).
    """

    tf_h: np.ndarray  # (L+1,)
    tf_c: np.ndarray  # (L+1,)
    port_h: np.ndarray  # (L+1,)
    port_c: np.ndarray  # (L+1,)
    bound_h: np.ndarray  # (L+1,)
    bound_c: np.ndarray  # (L+1,)
    factor: float  # the tail factor the bounds use
    members: int  # float32 members whose spread the bounds scale
    exact_hs: np.ndarray  # (L+1, H) float64 oracle output h (free-running)
    exact_logits: np.ndarray  # (L+1, 25) float64
    exact_reps: dict  # h_avg, h_final, c_final (H,) float64

    @property
    def ok(self) -> bool:
        """Every step of both implementations within its derived bound."""
        return bool(
            (self.tf_h <= self.bound_h).all()
            and (self.port_h <= self.bound_h).all()
            and (self.tf_c <= self.bound_c).all()
            and (self.port_c <= self.bound_c).all()
        )

    @property
    def h_err(self) -> np.ndarray:
        """Per position, the larger of the two implementations' step errors in ``h``."""
        return np.maximum(self.tf_h, self.port_h)

    @property
    def c_err(self) -> np.ndarray:
        return np.maximum(self.tf_c, self.port_c)

    @property
    def worst_ratio(self) -> float:
        """Largest step error over its bound, over positions, implementations and outputs."""
        return float(max((self.h_err / self.bound_h).max(), (self.c_err / self.bound_c).max()))


STEP_MEMBERS = 16  # float32 members of oracle.step_members whose spread scales the step bound


def step_errors(babbler, reference_params, port_params, seq: str, size: int) -> StepEvidence:
    """Per-position teacher-forced errors of one sequence, with the float64 oracle's outputs.

    Every position ``t`` starts TF and the port from the oracle's state after ``t - 1`` (rounded
    to float32); each one step is compared with the float64 step from that same float32 state.

    The bound is derived, not chosen: ``STEP_MEMBERS`` float32 evaluations of the step, each
    summing its matmuls in another order (``oracle.step_members``), stray from the float64 step
    by what rounding and summation order do on these very inputs; an implementation passes a
    position when its error is at most ``drift.tail_factor(STEP_MEMBERS, ALPHA_SEQUENCE / (L+1))``
    times the members' root-mean-square error there, plus ``drift.ULP_FLOOR`` ulp of the value
    (see ``parity_tests/drift.py``). A faithful float32 step fails it with probability below
    ``ALPHA_SEQUENCE`` per sequence; any porting bug in the step (gates, weight norm, embedding,
    carry order, start token) moves it by orders of magnitude more.
    """
    from unirep_port.jax_port import model
    from unirep_port.parity.drift import ALPHA_SEQUENCE, bound, floor_of, tail_factor
    from unirep_port.parity.oracle import params_digest

    cs, hs, tokens, c_prev, h_prev = _inputs(reference_params, seq, size)
    h_tf, c_tf = _tf_steps(babbler, tokens, c_prev, h_prev)
    prep = model.as_model(port_params, size).weights  # a planted model keeps its cell
    h_jx, c_jx = _port_steps(prep, tokens, c_prev, h_prev)
    kept = _KEPT.pop((size, params_digest(reference_params), seq), None) if _KEPT else None
    if kept is None:
        kept = _exact_and_members(reference_params, size, tokens, c_prev, h_prev)
    h_ex, c_ex, members_h, members_c = kept

    k = tail_factor(STEP_MEMBERS, ALPHA_SEQUENCE / len(tokens))
    exact_h = hs[:, -1]  # (L+1, H)
    dw = np.asarray(reference_params[DENSE_W_KEY], np.float64)
    db = np.asarray(reference_params[DENSE_B_KEY], np.float64)
    return StepEvidence(
        tf_h=_err_h(h_tf, h_ex),
        tf_c=_err_c(c_tf, c_ex),
        port_h=_err_h(h_jx, h_ex),
        port_c=_err_c(c_jx, c_ex),
        bound_h=bound(members_h, floor_of(np.abs(h_ex).max(axis=1)), k),
        bound_c=bound(members_c, floor_of(np.ones(len(tokens))), k),
        factor=k,
        members=STEP_MEMBERS,
        exact_hs=exact_h,
        exact_logits=exact_h @ dw + db,  # (L+1, H) @ (H, 25) -> (L+1, 25)
        exact_reps={"h_avg": exact_h.mean(axis=0), "h_final": exact_h[-1], "c_final": cs[-1, -1]},
    )


def _inputs(reference_params, seq: str, size: int):
    """The oracle's states of ``seq`` (L+1, layers, H) each, its tokens, and the float32 states
    every position starts from (the oracle's after the position before; zeros first)."""
    from unirep_port.parity.oracle import oracle_states

    cs, hs = oracle_states(reference_params, seq, size)  # (L+1, layers, H) each
    tokens = alphabet.tokenize(seq)
    c_prev = np.concatenate([np.zeros_like(cs[:1]), cs[:-1]]).astype(np.float32)
    h_prev = np.concatenate([np.zeros_like(hs[:1]), hs[:-1]]).astype(np.float32)
    return cs, hs, tokens, c_prev, h_prev


def _err_h(h, h_ex):
    """Per row, the largest ``|h - h_exact|`` over units: (..., N, H) -> (..., N)."""
    return np.abs(np.asarray(h, np.float64) - h_ex).max(axis=-1)


def _err_c(c, c_ex):
    """Per row, the largest ``|c - c_exact|`` over units relative to that row's largest
    ``|c_exact|``: (..., N, H) -> (..., N)."""
    c_scale = np.maximum(np.abs(c_ex).max(axis=-1), np.finfo(np.float32).tiny)  # (N,)
    return np.abs(np.asarray(c, np.float64) - c_ex).max(axis=-1) / c_scale


def _exact_and_members(reference_params, size: int, tokens, c_prev, h_prev):
    """The float64 step of every row, ``(h, c)`` (N, H) each, and the ``STEP_MEMBERS`` float32
    members' errors from it, ``(h errors, c errors)`` (members, N) each (``oracle.step_members``,
    one member in memory at a time)."""
    from unirep_port.parity.oracle import step_exact, step_members

    h_ex, c_ex = step_exact(reference_params, size, tokens, c_prev, h_prev)
    eh, ec = [], []
    for h, c in step_members(reference_params, size, tokens, c_prev, h_prev, STEP_MEMBERS):
        eh.append(_err_h(h, h_ex))
        ec.append(_err_c(c, c_ex))
    return h_ex, c_ex, np.array(eh), np.array(ec)


_KEPT: dict[tuple, tuple] = {}  # (size, weights' digest, seq) -> a group's rows, taken once


def prefetch_steps(reference_params, seqs, size: int) -> None:
    """The float64 steps and the members' step errors of several sequences in one call, kept for
    the next :func:`step_errors` of each (which then skips them).

    Each row's numbers are the ones :func:`step_errors` computes alone: the float64 step is row
    by row, and the members' summation orders come from the same seed in the same sequence
    whatever the rows (``oracle.step_members``); the matmuls just run on all the rows at once
    (one pass over the weights per member for the group instead of one per sequence, and the
    weights normalised once). Call after ``oracle_jax.prefetch`` of the same sequences (the
    float64 states then cost nothing).
    """
    from unirep_port.parity.oracle import params_digest

    parts = [_inputs(reference_params, s, size)[2:] for s in seqs]
    cut = np.cumsum([0] + [len(t) for t, _, _ in parts])
    h_ex, c_ex, eh, ec = _exact_and_members(
        reference_params, size, *(np.concatenate(x) for x in zip(*parts))
    )
    digest = params_digest(reference_params)
    _KEPT.clear()
    for j, s in enumerate(seqs):
        sl = slice(cut[j], cut[j + 1])
        _KEPT[(size, digest, s)] = (h_ex[sl], c_ex[sl], eh[:, sl], ec[:, sl])
