"""Per-position outputs (hidden states, logits) and babbling: the step-by-step paths.

Both run module-level jitted functions on the model's :class:`jax_port.model.Prepared` weights,
whose static ``cell`` (the :class:`jax_port.cell.CellFns`) is part of jit's cache key.
"""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port import alphabet
from unirep_port.alphabet import INT_TO_AA, START, STOP
from unirep_port.jax_port import engine, model
from unirep_port.jax_port.api import encode


def _chunk_body(prep, carries, tokens_t, reset):
    """Reset the ``reset`` rows, then K stacked steps over ``tokens_t`` (K, B).

    Returns the new carries and each step's output h (K, B, H) and logits (K, B, 25). The
    rows are independent: a row's numbers are those of any other batch of two or more rows
    (``tests/test_engine_tail.py`` checks this for the reps engine's same step).
    """
    engine.note_trace()  # runs once per trace, i.e. per compile
    keep = ~reset[:, None]  # (B, 1)
    carries = jax.tree_util.tree_map(lambda a: jnp.where(keep, a, 0.0), carries)

    def body(carries, tok):  # tok: (B,)
        carries, h, _ = model.stack_step(prep, tok, carries)  # h: (B, H)
        return carries, h

    carries, hs = jax.lax.scan(body, carries, tokens_t)  # (K, B, H)
    return carries, hs, prep.cell.logits(hs, prep.dense_w, prep.dense_b)  # (K, B, 25)


_chunk = jax.jit(_chunk_body, donate_argnums=(1,))


def _per_position(seqs, params, size, batch_size):
    """Every position's h and logits of ``seqs``, continuously batched.

    As the reps engine (:mod:`jax_port.engine`) schedules its slots: longest sequence first, and
    a slot whose sequence ended takes the next one at a chunk boundary, so a batch no longer runs
    to its longest member's length for all of its rows (the length bucketing this replaced
    computed 24.6k slot-steps for the 12.5k tokens of 32 real proteins, 57-991 aa). One compile
    per slot count and chunk length, whatever the lengths. Each chunk's outputs go to the host
    while the next one runs.
    """
    m = model.as_model(params, size)
    prep = m.weights
    toks = encode(seqs, tokenize=m.cell.tokenize)
    model.check_tokens(toks, prep.tab_xw.shape[0])
    n, hid = len(toks), m.hidden
    lengths = np.array([len(t) for t in toks], np.int64)
    K = engine.default_chunk_len(jax.default_backend(), hid)
    B = engine.pick_batch(n, batch_size, 1, lengths, K)
    hs_out = [np.empty((L, hid), np.float32) for L in lengths.tolist()]
    n_out = int(prep.dense_b.shape[0])  # 25 logits
    lg_out = [np.empty((L, n_out), np.float32) for L in lengths.tolist()]
    order = deque(np.argsort(-lengths, kind="stable").tolist())
    slot_seq, slot_pos = np.full(B, -1, np.int64), np.zeros(B, np.int64)
    pending: deque = deque()

    def drain(item) -> None:
        hs, lg, copies = item
        hs, lg = np.asarray(hs), np.asarray(lg)  # (K, B, H), (K, B, 25)
        for s, j, pos, k in copies:
            hs_out[j][pos : pos + k] = hs[:k, s]
            lg_out[j][pos : pos + k] = lg[:k, s]

    with jax.default_matmul_precision("highest"):
        carries = tuple(  # distinct buffers: they are donated
            tuple(jnp.zeros((B, hid), jnp.float32) for _ in range(2)) for _ in range(m.n_layers)
        )
        while True:
            reset = np.zeros(B, bool)
            for s in range(B):
                j = slot_seq[s]
                if j >= 0 and slot_pos[s] >= lengths[j]:
                    slot_seq[s] = -1
                if slot_seq[s] < 0 and order:
                    slot_seq[s], slot_pos[s], reset[s] = order.popleft(), 0, True
            busy = np.flatnonzero(slot_seq >= 0)
            if not len(busy):
                break
            tb = np.zeros((K, B), np.int32)
            copies = []
            for s in busy.tolist():
                j, pos = int(slot_seq[s]), int(slot_pos[s])
                seg = toks[j][pos : pos + K]
                tb[: len(seg), s] = seg
                copies.append((s, j, pos, len(seg)))
            carries, hs, lg = _chunk(prep, carries, tb, reset)
            slot_pos += K
            pending.append((hs, lg, copies))
            if len(pending) > 2:  # keep the device busy while the host copies an older chunk
                drain(pending.popleft())
        while pending:
            drain(pending.popleft())
    return hs_out, lg_out


def get_hidden_states_and_logits(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """:func:`get_hidden_states` and :func:`get_logits` of the same sequences from one pass.

    Returns two lists, float32 (L+1, H) and (L+1, 25) per sequence: the same numbers the two
    functions give (they run this one compiled forward and keep one of its two outputs).
    """
    return _per_position(seqs, params, size, batch_size)


def get_hidden_states(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """Per-position output h of each sequence, a list of float32 (L+1, H) arrays.

    Position 0 is the start token's output (``self._output`` of unirep.py L356-362).
    """
    return _per_position(seqs, params, size, batch_size)[0]


def get_logits(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """Per-position logits, a list of float32 (L+1, 25); logit k predicts token k+1 (L372-376)."""
    return _per_position(seqs, params, size, batch_size)[1]


@jax.jit
def _step(prep, tok, carries):
    engine.note_trace()
    carries, h, _ = model.stack_step(prep, tok, carries)  # h: (1, H)
    return carries, prep.cell.logits(h, prep.dense_w, prep.dense_b)  # (1, 25)


def babble(
    seed: str,
    length: int = 250,
    temperature: float = 1.0,
    key=None,
    params=None,
    size: int = 1900,
) -> str:
    """Sample a continuation of ``seed``; mirrors unirep.py L424-460 (get_babble).

    Samples token ``k+1`` with probability softmax(logits / temperature)[k] after reading the
    seed, appends it, and repeats until the string has ``length`` letters (at least one is
    added, as in the original) or the stop token is drawn (then it is not appended). The start
    token (24) is excluded from sampling, since it has no letter.
    ``key`` is a ``jax.random`` key (default ``PRNGKey(0)``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = model.as_model(params, size)
    seed_n = alphabet.normalize(seed, "seed")
    key = jax.random.PRNGKey(0) if key is None else key
    with jax.default_matmul_precision("highest"):
        prep, step = m.weights, _step
        carries = model.zero_carries(m.n_layers, 1, m.hidden)
        for t in m.cell.tokenize(seed_n):
            carries, lg = step(prep, jnp.asarray([t], jnp.int32), carries)
        out = seed_n
        while True:
            key, sub = jax.random.split(key)
            scaled = (lg[0] / temperature).at[START - 1].set(-jnp.inf)  # (25,): never "start"
            tok = int(jax.random.categorical(sub, scaled)) + 1
            if tok == STOP:
                break
            out += INT_TO_AA[tok]
            if len(out) >= length:
                break
            carries, lg = step(prep, jnp.asarray([tok], jnp.int32), carries)
    return out
