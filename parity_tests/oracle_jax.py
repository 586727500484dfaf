"""The float64 oracle and its float32 witnesses as compiled programs (JAX with x64, scoped).

The same equations as :mod:`oracle` (the original's ``unirep.py`` L75-126 for the cell, L222-309
for the stack, L395-420 for the reps), stated once more here and imported from nowhere: nothing
in this module comes from ``jax_port`` (the port under judgement) or from the NumPy oracle, so a
mistake shared by two of the three would need the same mistake written three times (what the two
oracles share is no math: the states cache, ``oracle_cache``, and the drift statistics of a
panel, ``exact``). Weight norm
``w / sqrt(max(sum(w**2, axis 0), 1e-12)) * g``; ``m = (x @ wmx) * (h @ wmh)``;
``z = x @ wx + m @ wh + b`` split as i, f, o, u; ``c = sig(f) c + sig(i) tanh(u)``;
``h = sig(o) tanh(c)``.

Why a second oracle: the NumPy one steps position by position in Python, and the parity suite
spent most of its time there. Here one chunk of :data:`CHUNK` positions is one XLA program that
carries, side by side, the float64 state of every sequence of a batch and the float32 states of
its ensemble members (each nudged by one ulp after every step, as ``oracle.float32_ensemble``
does), and accumulates the members' drift from float64 inside the program. Shapes are fixed per
batch size (one compile per configuration, whatever the lengths), and 64-bit types are switched
on only while these programs trace and run (``jax.enable_x64``), never for the rest of the process.

The NumPy oracle is kept: ``parity_tests/tests/test_oracle_jax.py`` checks the two against each
other (float64 outputs within a bound derived from the float32 witnesses scaled by the ratio of
unit roundoffs, and the members' drifts indistinguishable by the suite's sign test), on a panel
in every full-tier run and on a small one in the gate. The speed of each is measured side by
side by ``python -m unirep_port.parity.oracle_bench`` (``parity_tests/results/oracle-speed.json``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from unirep_port.alphabet import pad_batch, validate_sequences
from unirep_port.batches import by_length
from unirep_port.parity.exact import STATS, Exact, put_drift
from unirep_port.parity.oracle_cache import params_digest, put_states
from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY, EMBED_KEY, get_size

CHUNK = 32  # positions per compiled program; the state crosses chunks on the device


class Layer(NamedTuple):
    """One cell's weights after the weight norm, transposed to (n_out, n_in) (XLA's fast layout)."""

    wx: object  # (4H, n_in)
    wh: object  # (4H, H)
    wmx: object  # (H, n_in)
    wmh: object  # (H, H)
    b: object  # (4H,)


def _x64():
    return jax.enable_x64(True)


def _normed_layers(params: Mapping[str, np.ndarray], size: int, dtype) -> tuple[Layer, ...]:
    """Weight-normed, transposed layers: the norm in float64, then rounded to ``dtype``."""
    m = get_size(size)
    layers = []
    for i in range(m.n_layers):
        p = {k: jnp.asarray(params[m.cell_key(i, k)], jnp.float64) for k in Layer._fields}
        g = {
            k: jnp.asarray(params[m.cell_key(i, "g" + k[1:])], jnp.float64)
            for k in ("wx", "wh", "wmx", "wmh")
        }
        out = {"b": p["b"].astype(dtype)}
        for k in ("wx", "wh", "wmx", "wmh"):
            w = p[k]  # (n_in, n_out)
            norm = jnp.sqrt(jnp.maximum(jnp.sum(w * w, axis=0, keepdims=True), 1e-12))  # (1, n_out)
            out[k] = ((w / norm * g[k][None, :]).T).astype(dtype)  # (n_out, n_in)
        layers.append(Layer(**out))
    return tuple(layers)


_PREPARED: dict[tuple, tuple] = {}


def _prepared(params: Mapping[str, np.ndarray], size: int) -> tuple:
    """``(emb64, layers64, emb32, layers32)`` on the device, built once per weights' content."""
    key = (int(size), params_digest(params))
    if key not in _PREPARED:
        with _x64():
            l64 = _normed_layers(params, size, jnp.float64)
            l32 = _normed_layers(params, size, jnp.float32)
            emb64 = jnp.asarray(params[EMBED_KEY], jnp.float64)
            emb32 = jnp.asarray(params[EMBED_KEY], jnp.float32)
        _PREPARED.clear()  # one model at a time: the 1900 weights are 0.4 GB in both precisions
        _PREPARED[key] = (emb64, l64, emb32, l32)
    return _PREPARED[key]


def _tanh(x):
    """tanh rounded once to ``x``'s dtype: evaluated in float64 (XLA's own float32 tanh is a
    rational approximation a few ulp off, which would make the members less accurate than the
    float32 implementations they stand for; C libraries' ``tanhf`` is within an ulp)."""
    return jnp.tanh(x.astype(jnp.float64)).astype(x.dtype)


def _sigmoid(x):
    return 0.5 * (1.0 + _tanh(0.5 * x))  # exact identity; keeps x's dtype


def _cell(x, c, h, p: Layer):
    """One mLSTM step: ``x`` (N, n_in), ``c``/``h`` (N, H) -> new ``(c, h)``."""

    def mm(a, w):  # (N, n_in) . (n_out, n_in) -> (N, n_out), contracted on n_in
        return lax.dot_general(a, w, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)

    m = mm(x, p.wmx) * mm(h, p.wmh)  # (N, H)
    z = mm(x, p.wx) + mm(m, p.wh) + p.b[None, :]  # (N, 4H) + (1, 4H)
    zi, zf, zo, zu = jnp.split(z, 4, axis=-1)  # 4 x (N, H)
    c = _sigmoid(zf) * c + _sigmoid(zi) * _tanh(zu)
    return c, _sigmoid(zo) * _tanh(c)


def _nudge(x, key):
    """Each element one float32 ulp up, down or unchanged, uniformly (to 2**-32: one 32-bit draw
    per element taken mod 3; 2**32 = 1 mod 3, so "down" is one draw in 2**32 likelier).

    ``jax.random.randint`` did the same exactly, from two 32-bit draws and a span reduction
    each, a large share of a drift pass (measured side by side: commit 8e32d1a's message). The
    NumPy oracle's ``rng.integers(-1, 2)`` is exact; the cross-check compares the two ensembles
    by the sign test, never bit for bit.
    """
    bits = jax.random.bits(key, x.shape, jnp.uint32)
    d = (bits % jnp.uint32(3)).astype(jnp.int32) - 1  # -1, 0, +1
    up, down = jnp.nextafter(x, jnp.inf), jnp.nextafter(x, -jnp.inf)
    return jnp.where(d > 0, up, jnp.where(d < 0, down, x))


class State(NamedTuple):
    """What crosses chunk boundaries. ``B`` sequences, ``K`` members each (rows ``b * K + k``)."""

    c64: object  # (layers, B, H) float64
    h64: object  # (layers, B, H) float64
    cfin64: object  # (B, H) float64: the last layer's c at each sequence's last position
    c32: object  # (layers, B*K, H) float32
    h32: object  # (layers, B*K, H) float32
    drift_hs: object  # (B*K,) float64: sum over positions of max over units |h32 - h64|
    sum32: object  # (B*K, H) float32: running sum of the members' h (for h_avg)
    hfin32: object  # (B*K, H) float32
    cfin32: object  # (B*K, H) float32
    key: object  # PRNG key of the nudges


@functools.partial(jax.jit, static_argnames=("members", "exact", "want_hs32", "want_states"))
def _chunk(state: State, tokens, t0, lengths, emb64, l64, emb32, l32, *, members, exact,
           want_hs32, want_states):  # fmt: skip
    """Advance every row by ``tokens.shape[1]`` positions starting at position ``t0``.

    ``tokens`` (B, S) int32, ``lengths`` (B,) (start token included). Returns the new state and
    the per-position outputs: ``h64`` (S, B, H) always; ``h32`` (S, B*K, H) if ``want_hs32``;
    the float64 states of every layer ``(c, h)`` (S, layers, B, H) each if ``want_states``.
    Without ``exact`` the float64 rows are not run (members alone, no drift accumulated).
    """
    K = members
    lengths_k = jnp.repeat(lengths, K) if K else lengths[:0]  # (B*K,)

    def step(st: State, inp):
        tok, t = inp  # (B,), scalar
        new, out = st, {}
        if exact:
            x64 = emb64[tok]  # (B, 10)
            c64, h64 = [], []
            for i, p in enumerate(l64):
                c, x64 = _cell(x64, st.c64[i], st.h64[i], p)  # (B, H) each
                c64.append(c)
                h64.append(x64)
            last = (lengths - 1) == t  # (B,)
            cfin64 = jnp.where(last[:, None], c64[-1], st.cfin64)
            new = st._replace(c64=jnp.stack(c64), h64=jnp.stack(h64), cfin64=cfin64)
            out["h64"] = x64
            if want_states:
                out["states"] = (new.c64, new.h64)  # (layers, B, H) each
        if K:
            key, *subs = jax.random.split(st.key, 1 + 2 * len(l32))
            x32 = jnp.repeat(emb32[tok], K, axis=0)  # (B*K, 10)
            c32, h32 = [], []
            for i, p in enumerate(l32):
                c, x32 = _cell(x32, st.c32[i], st.h32[i], p)  # (B*K, H) float32
                c, x32 = _nudge(c, subs[2 * i]), _nudge(x32, subs[2 * i + 1])
                c32.append(c)
                h32.append(x32)
            live = t < lengths_k  # (B*K,)
            lastk = (lengths_k - 1) == t
            if exact:
                err = jnp.max(jnp.abs(x32.astype(jnp.float64) - jnp.repeat(x64, K, 0)), axis=1)
                new = new._replace(drift_hs=st.drift_hs + jnp.where(live, err, 0.0))
            new = new._replace(
                c32=jnp.stack(c32),
                h32=jnp.stack(h32),
                sum32=st.sum32 + jnp.where(live[:, None], x32, jnp.float32(0)),
                hfin32=jnp.where(lastk[:, None], x32, st.hfin32),
                cfin32=jnp.where(lastk[:, None], c32[-1], st.cfin32),
                key=key,
            )
            if want_hs32:
                out["h32"] = x32
        return new, out

    S = tokens.shape[1]
    ts = t0 + jnp.arange(S, dtype=jnp.int32)
    return lax.scan(step, state, (tokens.T, ts))


def _init(B: int, K: int, n_layers: int, H: int, seed: int) -> State:
    z64 = jnp.zeros((n_layers, B, H), jnp.float64)
    z32 = jnp.zeros((n_layers, B * K, H), jnp.float32)
    r32 = jnp.zeros((B * K, H), jnp.float32)
    return State(
        z64, z64, jnp.zeros((B, H), jnp.float64), z32, z32,
        jnp.zeros((B * K,), jnp.float64), r32, r32, r32, jax.random.key(seed),
    )  # fmt: skip


# Shrink a batch as its sequences end only for models this wide. Each smaller batch is one more
# compile (up to log2(B) of them, then read from the persistent compile cache the parity tiers
# turn on). Measured on the gate's real-protein drift passes, warm and compiling, per size
# (commit 9674af0's message; the gate's timings in docs/parity-tiers.md): shrinking pays warm for
# every size, but the 64 model's extra compiles cost more than its steps save, so it keeps its
# full batch (its steps cost little more than their overhead).
SHRINK_MIN_HIDDEN = 256


def _bucket(n: int) -> int:
    """The rows a batch shrinks to when only ``n`` of its sequences are still running."""
    return 1 << (max(n, 1) - 1).bit_length()


def _take(st: State, keep: np.ndarray, K: int) -> State:
    """The state of rows ``keep`` (and their members) only."""
    k32 = jnp.asarray((keep[:, None] * K + np.arange(K)).ravel()) if K else None
    k64 = jnp.asarray(keep)
    return State(
        st.c64[:, k64], st.h64[:, k64], st.cfin64[k64],
        *((st.c32[:, k32], st.h32[:, k32]) if K else (st.c32, st.h32)),
        *((st.drift_hs[k32], st.sum32[k32], st.hfin32[k32], st.cfin32[k32]) if K
          else (st.drift_hs, st.sum32, st.hfin32, st.cfin32)),
        st.key,
    )  # fmt: skip


def run_batch(
    params: Mapping[str, np.ndarray],
    size: int,
    seqs: Sequence[str],
    *,
    members: int = 0,
    seed: int = 0,
    exact: bool = True,
    want_hs32: bool = False,
    want_states: bool = False,
    shrink: bool | None = None,
) -> dict[str, np.ndarray]:
    """One batch of validated sequences through the compiled oracle (and ``members`` members).

    Returns NumPy arrays: ``hs64`` (B, T, H) float64 (T = the longest length, start token
    included; rows past their length are padding), ``lengths`` (B,), ``cfin64`` (B, H); with
    members, ``drift_hs`` (B, K) (mean over each sequence's positions of the largest unit
    ``|h32 - h64|``), ``h_avg32`` / ``h_final32`` / ``c_final32`` (B, K, H) float32, and
    ``hs32`` (B, K, T, H) if ``want_hs32``; ``states`` ``(c, h)`` (T, layers, B, H) float64 each if
    ``want_states``.

    ``shrink`` (default: for models at least :data:`SHRINK_MIN_HIDDEN` wide): the batch shrinks
    as its sequences end: at a chunk boundary where the sequences still running
    fit a power of two of rows below the current count, the program continues on those rows (and
    finished ones to fill the power of two, whose results are already final), so a long sequence
    does not carry the short ones' finished rows to its end. Each row's float64 numbers are the
    exact math rounded once whatever batch it is in; the members' nudges come from one key per
    step over the rows present, so they are as independent in a smaller batch as in a larger one.
    """
    m = get_size(size)
    tokens, lengths = pad_batch(list(seqs))
    B, T = tokens.shape
    width = -(-T // CHUNK) * CHUNK
    tokens = np.pad(tokens, ((0, 0), (0, width - T)))
    lengths = np.asarray(lengths)
    emb64, l64, emb32, l32 = _prepared(params, size)
    got = _Collected.empty(width, B, members, m, exact, want_states, want_hs32)
    if shrink is None:
        shrink = m.hidden >= SHRINK_MIN_HIDDEN
    rows = np.arange(B)  # original row of each batch position
    with _x64():
        st = _init(B, members, m.n_layers, m.hidden, seed)
        for t0 in range(0, width, CHUNK):
            if shrink:
                st, rows = _shrunk(st, rows, lengths, t0, got)
            st, out = _chunk(
                st, jnp.asarray(tokens[rows, t0 : t0 + CHUNK]), jnp.int32(t0),
                jnp.asarray(lengths[rows]), emb64, l64, emb32, l32,
                members=members, exact=exact, want_hs32=want_hs32, want_states=want_states,
            )  # fmt: skip
            got.add_chunk(out, rows, t0)
        got.keep_finals(st, rows, np.arange(len(rows)))
    return got.results(lengths, T)


def _shrunk(st: State, rows: np.ndarray, lengths: np.ndarray, t0: int, got: _Collected):
    """The batch at position ``t0`` on fewer rows, where the sequences still running fit a power
    of two of rows below the current count (finished ones fill it up): the state and original
    row of each position kept; the finished rows left out have their finals kept in ``got``."""
    running = np.flatnonzero(lengths[rows] > t0)
    if _bucket(len(running)) >= len(rows):
        return st, rows
    done = np.flatnonzero(lengths[rows] <= t0)
    fill = done[: _bucket(len(running)) - len(running)]
    keep = np.concatenate([running, fill])
    got.keep_finals(st, rows, np.setdiff1d(np.arange(len(rows)), keep))
    return _take(st, keep, got.K), rows[keep]


@dataclass
class _Collected:
    """Host copies of every row's results in :func:`run_batch`, filled chunk by chunk (the
    per-position outputs) and as rows leave the batch or at its end (the finals)."""

    K: int  # members per sequence
    h64: np.ndarray | None  # (width, B, H) float64, with ``exact``
    states: tuple | None  # (c, h) (width, layers, B, H) float64 each, with ``want_states``
    h32: np.ndarray | None  # (width, B*K, H) float32, with ``want_hs32`` and members
    fin: dict  # cfin64 (B, H); drift_hs (B*K,); sum32, hfin32, cfin32 (B*K, H)

    @classmethod
    def empty(cls, width, B, K, m, exact, want_states, want_hs32) -> _Collected:
        H = m.hidden
        return cls(
            K=K,
            h64=np.zeros((width, B, H)) if exact else None,
            states=tuple(np.zeros((width, m.n_layers, B, H)) for _ in range(2))
            if want_states
            else None,
            h32=np.zeros((width, B * K, H), np.float32) if want_hs32 and K else None,
            fin={
                "cfin64": np.zeros((B, H)),
                "drift_hs": np.zeros(B * K),
                "sum32": np.zeros((B * K, H), np.float32),
                "hfin32": np.zeros((B * K, H), np.float32),
                "cfin32": np.zeros((B * K, H), np.float32),
            },
        )

    def add_chunk(self, out: dict, rows: np.ndarray, t0: int) -> None:
        """The per-position outputs of the chunk at ``t0`` for batch rows ``rows``."""
        sl = slice(t0, t0 + CHUNK)
        if self.h64 is not None:
            self.h64[sl, rows] = np.asarray(out["h64"])
        if self.states is not None:
            for j in (0, 1):
                self.states[j][sl, :, rows] = np.asarray(out["states"][j])  # (S, layers, n, H)
        if self.h32 is not None:
            r32 = (rows[:, None] * self.K + np.arange(self.K)).ravel()
            self.h32[sl, r32] = np.asarray(out["h32"])  # (S, n*K, H)

    def keep_finals(self, st: State, rows: np.ndarray, which: np.ndarray) -> None:
        """Copy the final results of batch positions ``which`` (original rows ``rows[which]``)."""
        K, fin = self.K, self.fin
        fin["cfin64"][rows[which]] = np.asarray(st.cfin64)[which]
        if K:
            w32 = (which[:, None] * K + np.arange(K)).ravel()
            r32 = (rows[which][:, None] * K + np.arange(K)).ravel()
            for name in ("drift_hs", "sum32", "hfin32", "cfin32"):
                fin[name][r32] = np.asarray(getattr(st, name))[w32]

    def results(self, lengths: np.ndarray, T: int) -> dict[str, np.ndarray]:
        """:func:`run_batch`'s arrays, cut to the longest length ``T``."""
        K, fin, B = self.K, self.fin, len(lengths)
        res = {"lengths": lengths}
        if self.h64 is not None:
            res["hs64"], res["cfin64"] = np.swapaxes(self.h64[:T], 0, 1), fin["cfin64"]
        if self.states is not None:
            res["states"] = tuple(x[:T] for x in self.states)
        if K:
            L = np.repeat(lengths, K).astype(np.float64)
            if self.h64 is not None:
                res["drift_hs"] = (fin["drift_hs"] / L).reshape(B, K)
            res["h_avg32"] = (fin["sum32"] / L[:, None].astype(np.float32)).reshape(B, K, -1)
            res["h_final32"] = fin["hfin32"].reshape(B, K, -1)
            res["c_final32"] = fin["cfin32"].reshape(B, K, -1)
            if self.h32 is not None:
                res["hs32"] = np.moveaxis(self.h32[:T].reshape(T, B, K, -1), 0, 2)  # (B, K, T, H)
        return res


def oracle_outputs(params, seqs: Sequence[str], size: int, batch_size: int = 16):
    """Float64 :class:`compare.Outputs` of ``seqs`` (as ``oracle.oracle_outputs``), compiled."""
    from unirep_port.parity.compare import Outputs

    seqs = validate_sequences(seqs)
    dw = np.asarray(params[DENSE_W_KEY], np.float64)
    db = np.asarray(params[DENSE_B_KEY], np.float64)
    n, hid = len(seqs), get_size(size).hidden
    hs: list = [None] * n
    reps = np.zeros((3, n, hid))
    for idx in by_length(seqs, batch_size):
        r = run_batch(params, size, [seqs[i] for i in idx])
        for row, i in enumerate(idx):
            L = r["lengths"][row]
            hs[i] = r["hs64"][row, :L]
            reps[0, i], reps[1, i], reps[2, i] = hs[i].mean(0), hs[i][L - 1], r["cfin64"][row]
    logits = [h @ dw + db for h in hs]  # (L, H) @ (H, 25) -> (L, 25)
    return Outputs(hs, logits, reps[0], reps[1], reps[2])


PREFETCH_GROUP = 8  # sequences per batched evidence run (oracle_cache keeps STATES_KEPT = 8)
_ENSEMBLES: dict[tuple, object] = {}
# Per sequence, what a prefetch computed that a drift pass over a panel would compute again: the
# float64 hs and final c, and each member's drift statistics (``run_batch``'s own). Keyed by
# content (size, weights' digest, sequence); the newest BULK_KEPT are kept.
_BULK: dict[tuple, dict] = {}
BULK_KEPT = 32


def _members_of(r: dict, row: int, params) -> object:
    """Row ``row``'s members in ``run_batch``'s result ``r`` (with ``hs32``) as
    :class:`compare.Outputs`: hs and logits per member, and their reps."""
    from unirep_port.parity.compare import Outputs

    dw = np.asarray(params[DENSE_W_KEY], np.float32)
    db = np.asarray(params[DENSE_B_KEY], np.float32)
    hs = r["hs32"][row, :, : int(r["lengths"][row])]  # (K, L, H)
    logits = hs @ dw + db  # (K, L, H) @ (H, 25) -> (K, L, 25)
    return Outputs(list(hs), list(logits), r["h_avg32"][row], r["h_final32"][row],
                   r["c_final32"][row])  # fmt: skip


def _bulk_row(r: dict, row: int) -> dict:
    """Row ``row`` of ``run_batch``'s result (with members and the float64 rows) as the drift
    pass uses it: float64 hs (L, H) and final c, and each member's drift statistics."""
    L = int(r["lengths"][row])
    return {
        "hs64": r["hs64"][row, :L],
        "cfin64": r["cfin64"][row],
        **{k: r[k][row] for k in ("drift_hs", "h_avg32", "h_final32", "c_final32")},
    }


def prefetch(params, size: int, seqs: Sequence[str], members: int, seed: int = 0) -> None:
    """The float64 states and the ``members``-member float32 ensemble of several sequences in one
    batched run (the weights read once per step for all of them), kept for the next
    :func:`oracle_states` / :func:`float32_ensemble` call on each (which then costs nothing),
    and for a later :func:`drifts_from_float64` over a panel holding them.

    The parity engine calls this before gathering the evidence of a group of sequences over
    tolerance; a row's numbers do not depend on the other rows (XLA's CPU kernels round a row
    alike in any batch of two or more), and each member is an unbiased nudged float32 evaluation
    either way. The nudges are drawn from ``seed`` and the group's sequences together, so two
    groups never share their draws.
    """
    import zlib

    seqs = validate_sequences(seqs)
    digest = params_digest(params)
    draws = (seed << 32) | zlib.crc32("\n".join(seqs).encode())
    r = run_batch(params, size, seqs, members=members, seed=draws, want_hs32=True, want_states=True)
    c, h = r["states"]  # (T, layers, B, H) each
    _ENSEMBLES.clear()
    for row, seq in enumerate(seqs):
        L = int(r["lengths"][row])
        key = (size, seq, digest, "jax")  # what oracle.oracle_states looks up
        put_states(key, c[:L, :, row].copy(), h[:L, :, row].copy())
        _ENSEMBLES[(size, digest, seq, members, seed)] = _members_of(r, row, params)
        _BULK.pop((size, digest, seq), None)
        _BULK[(size, digest, seq)] = {**_bulk_row(r, row), "hs64": r["hs64"][row, :L].copy()}
        while len(_BULK) > BULK_KEPT:
            del _BULK[next(iter(_BULK))]


def float32_ensemble(params, seq: str, size: int, members: int = 8, seed: int = 0):
    """``members`` nudged float32 evaluations of one sequence (as ``oracle.float32_ensemble``)."""
    (seq,) = validate_sequences([seq])
    kept = _ENSEMBLES.pop((size, params_digest(params), seq, members, seed), None)
    if kept is not None:
        return kept
    return float32_ensembles(params, [seq], size, members, seed)[0]


def float32_ensembles(params, seqs: Sequence[str], size: int, members: int, seed: int = 0):
    """:func:`float32_ensemble` of several sequences in one batched run: a list of
    :class:`compare.Outputs`, one per sequence (a row's members do not depend on the other rows;
    each is an unbiased nudged float32 evaluation)."""
    seqs = validate_sequences(seqs)
    r = run_batch(params, size, seqs, members=members, seed=seed, exact=False, want_hs32=True)
    return [_members_of(r, row, params) for row in range(len(seqs))]


def oracle_states(params, seq: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``c``, ``h`` after every position of one sequence, (L+1, layers, H) each."""
    (seq,) = validate_sequences([seq])
    c, h = run_batch(params, size, [seq], want_states=True)["states"]  # (T, layers, 1, H)
    return c[:, :, 0], h[:, :, 0]


def drifts_from_float64(
    params, size: int, seqs: Sequence[str], implementations: Mapping, members: int,
    batch_size: int = 32, seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """``realpanel.drifts_from_float64``'s result (same names, stats and meaning), compiled.

    Sequences a :func:`prefetch` of the same weights already ran (the evidence of the ones over
    tolerance) take its float64 outputs and its first ``members`` members instead of running
    again: the same computation, other independent nudges.
    """
    n = len(seqs)
    names = list(implementations) + [f"member{k}" for k in range(members)]
    out = {name: {s: np.zeros(n) for s in STATS} for name in names}
    digest = params_digest(params)
    kept = {}
    for i, s in enumerate(seqs):
        got = _BULK.get((size, digest, s))
        if got is not None and len(got["drift_hs"]) >= members:
            kept[i] = got

    def put(i: int, got: dict) -> None:
        ex_h = got["hs64"]  # (L, H)
        ex = Exact(ex_h, ex_h.mean(0), ex_h[-1], got["cfin64"])
        for name, o in implementations.items():
            put_drift(out[name], i, ex, o.hs[i], o.h_avg[i], o.h_final[i], o.c_final[i])
        for k in range(members):
            d = out[f"member{k}"]
            d["hs"][i] = got["drift_hs"][k]  # accumulated in the compiled program
            put_drift(d, i, ex, None, got["h_avg32"][k], got["h_final32"][k], got["c_final32"][k])

    for i, got in kept.items():
        put(i, got)
    order = [i for i in np.argsort([len(s) for s in seqs], kind="stable") if i not in kept]
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start : start + batch_size]
        r = run_batch(params, size, [seqs[i] for i in idx], members=members, seed=seed + b)
        for row, i in enumerate(idx):
            put(i, _bulk_row(r, row))
    return out
