"""Per-position outputs (hidden states, logits) and babbling: the step-by-step paths.

Both run module-level jitted functions on the model's :class:`jax_port.model.Prepared` weights,
whose static ``cell`` (the :class:`jax_port.cell.CellFns`) is part of jit's cache key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port import alphabet
from unirep_port.alphabet import INT_TO_AA, START, STOP
from unirep_port.jax_port import engine, model
from unirep_port.jax_port.api import encode


def _padded(seqs, tokenize) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
    toks = encode(seqs, tokenize=tokenize)
    lengths = np.array([len(t) for t in toks], np.int32)
    width = -(-int(lengths.max()) // 128) * 128  # bucket T to a multiple of 128: few compiles
    arr = np.zeros((len(toks), width), np.int32)
    for i, t in enumerate(toks):
        arr[i, : len(t)] = t
    return toks, arr, lengths, width


@jax.jit
def _forward(prep, tokens, lengths):
    engine._TRACES["n"] += 1  # runs once per trace, i.e. per compile
    return model.forward_prepared(prep, tokens, lengths)


def _per_position(seqs, params, size, batch_size, which):
    m = model.as_model(params, size)
    prep = m.weights
    toks, arr, lengths, _ = _padded(seqs, m.cell.tokenize)
    out: list[np.ndarray | None] = [None] * len(toks)
    order = np.argsort(-lengths, kind="stable")
    with jax.default_matmul_precision("highest"):
        for start in range(0, len(toks), batch_size):
            idx = order[start : start + batch_size]
            width = -(-int(lengths[idx].max()) // 128) * 128
            bsz = engine.pick_batch(len(idx), batch_size, 1)
            tb = np.zeros((bsz, width), np.int32)
            lb = np.ones(bsz, np.int32)
            tb[: len(idx)], lb[: len(idx)] = arr[idx, :width], lengths[idx]
            res = _forward(prep, tb, lb)
            res = tuple(np.asarray(r) for r in res) if which is None else np.asarray(res[which])
            for k, j in enumerate(idx):
                out[j] = (
                    tuple(r[k, : lengths[j]] for r in res)
                    if which is None
                    else res[k, : lengths[j]]
                )
    return out


def get_hidden_states_and_logits(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """:func:`get_hidden_states` and :func:`get_logits` of the same sequences from one pass.

    Returns two lists, float32 (L+1, H) and (L+1, 25) per sequence: the same numbers the two
    functions give (they run this one compiled forward and keep one of its two outputs).
    """
    both = _per_position(seqs, params, size, batch_size, None)
    return [h for h, _ in both], [lg for _, lg in both]


def get_hidden_states(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """Per-position output h of each sequence, a list of float32 (L+1, H) arrays.

    Position 0 is the start token's output (``self._output`` of unirep.py L356-362).
    """
    return _per_position(seqs, params, size, batch_size, 0)


def get_logits(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """Per-position logits, a list of float32 (L+1, 25); logit k predicts token k+1 (L372-376)."""
    return _per_position(seqs, params, size, batch_size, 1)


@jax.jit
def _step(prep, tok, carries):
    engine._TRACES["n"] += 1
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
