"""A float64 NumPy oracle of the same math, the third voice when TF and the port disagree.

Written independently of both implementations from the original's equations (unirep.py L75-126
for the cell, L222-309 for the stack, L395-420 for reps): weight norm
``w / sqrt(max(sum(w**2, axis 0), 1e-12)) * g``, ``m = (x @ wmx) * (h @ wmh)``,
``z = x @ wx + m @ wh + b`` split as i, f, o, u, ``c = sig(f) c + sig(i) tanh(u)``,
``h = sig(o) tanh(c)``.

Why it exists: on long random sequences the 1900 model has stretches where float32 rounding is
amplified by the recurrence, so the TF reference itself moves away from the exact result by more
than the tolerance (measured: 8.6e-5 at position 1,853 of a random 2,000-mer). There, a TF-vs-port
difference says nothing about the port; the oracle says which side is off, and by how much.

:func:`float32_ensemble` adds the spread: the same math run in float32 by several independent
members whose states are nudged by one rounding unit at every step, so each rounds differently.
Each member is a faithful float32 implementation written apart from both TF and the port, and how
far members stray from float64 (and from TF) at a position measures how much float32 rounding
alone can move the output there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from unirep_port.alphabet import pad_batch, validate_sequences
from unirep_port.batches import by_length
from unirep_port.parity.compare import Outputs
from unirep_port.parity.exact import STATS, Exact, put_drift
from unirep_port.parity.oracle_cache import get_states, params_digest, put_states
from unirep_port.sizes import DENSE_B_KEY, DENSE_W_KEY, EMBED_KEY, get_size

# Which engine runs the oracle and its ensembles: "jax" (``oracle_jax``, compiled, the default)
# or "numpy" (this module's loops, kept as the cross-check of the compiled one).
BACKENDS = ("jax", "numpy")
DEFAULT_BACKEND = "jax"


def _backend(name: str | None) -> str:
    name = name or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise ValueError(f"unknown oracle backend {name!r}; choose one of {BACKENDS}")
    return name


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exact identity, stable for large |x|; keeps x's dtype (Python scalars do not promote)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _cell_arrays(params: Mapping[str, np.ndarray], size: int, layer: int, dtype) -> dict:
    """The nine arrays of one cell, by short name, as ``dtype``."""
    m = get_size(size)
    return {
        k: np.asarray(params[m.cell_key(layer, k)], dtype)
        for k in ("wx", "wh", "wmx", "wmh", "b", "gx", "gh", "gmx", "gmh")
    }


def _normed(params: Mapping[str, np.ndarray], size: int, layer: int) -> dict[str, np.ndarray]:
    p = _cell_arrays(params, size, layer, np.float64)
    out = {"b": p["b"]}
    for w, g in (("wx", "gx"), ("wh", "gh"), ("wmx", "gmx"), ("wmh", "gmh")):
        norm = np.sqrt(np.maximum(np.sum(p[w] ** 2, axis=0, keepdims=True), 1e-12))  # (1, n_out)
        out[w] = p[w] / norm * p[g]  # (n_in, n_out)
    return out


def _step(x, c, h, p, mm=np.matmul):
    """One mLSTM step of the equations above, for any leading (batch) shape.

    ``x`` (..., n_in), ``c`` and ``h`` (..., H); returns the new ``(c, h)``. ``mm`` is the matmul
    (:func:`_step_permuted` passes one that sums in a shuffled order). The one float64/float32
    NumPy step of the kit (the oracle, its ensembles, ``stepwise`` and ``realpanel`` use it).
    """
    m = mm(x, p["wmx"]) * mm(h, p["wmh"])  # (..., H)
    zi, zf, zo, zu = np.split(mm(x, p["wx"]) + mm(m, p["wh"]) + p["b"], 4, axis=-1)  # 4 x (..., H)
    c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zu)
    return c, _sigmoid(zo) * np.tanh(c)


def _normed_f32(params: Mapping[str, np.ndarray], size: int, layer: int) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float32) for k, v in _normed(params, size, layer).items()}


_UP, _DOWN = np.float32(np.inf), np.float32(-np.inf)


def _nudge(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each element one ulp up, one ulp down or unchanged, uniformly (unbiased).

    ``np.nextafter`` of the element toward +inf or -inf as the draw ``d`` in {-1, 0, +1} says.
    For float32 that is done on the bit patterns: IEEE-754 orders a sign-magnitude pattern's
    magnitude like its integer, so one ulp toward +inf is pattern + 1 for x > 0 and pattern - 1
    for x < 0 (the largest finite value steps to inf, the smallest subnormal to a signed zero,
    as ``nextafter`` does); zeros, infinities and NaNs go through ``nextafter`` itself. The same
    draws and the same values as the ``nextafter`` formula (``tests/test_parity_rules.py``),
    and faster (measured side by side: commit 295a7da's message); it runs once per weight array
    of every member in the evotune checks.
    """
    d = rng.integers(-1, 2, x.shape)  # -1, 0, +1
    x = np.asarray(x)
    if x.dtype != np.float32:
        return _by_nextafter(x, d)
    step = np.array(d, np.int32)  # an array even for a 0-d x (rng.integers gives a scalar)
    np.negative(step, out=step, where=x < 0)
    out = (np.ascontiguousarray(x).view(np.int32) + step).view(np.float32).reshape(x.shape)
    edge = (x == 0) | ~np.isfinite(x)
    if edge.any():
        out[edge] = _by_nextafter(x[edge], d[edge])
    return out


def _by_nextafter(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``x`` one ulp toward +inf where ``d > 0``, toward -inf where ``d < 0``, else unchanged."""
    return np.where(d > 0, np.nextafter(x, _UP), np.where(d < 0, np.nextafter(x, _DOWN), x))


def float32_ensemble(
    params: Mapping[str, np.ndarray],
    seq: str,
    size: int,
    members: int = 8,
    seed: int = 0,
    backend: str | None = None,
) -> Outputs:
    """The oracle's math in float32 for ``members`` perturbed copies of one sequence.

    Every member starts from the zero state; after each step every element of its ``c`` and
    ``h`` is moved by one float32 unit in the last place up, down, or not at all (uniformly,
    seeded), an unbiased rounding-sized nudge that decorrelates the members' rounding from then
    on. Returns :class:`Outputs` whose ``hs[k]`` / ``logits[k]`` are member ``k``'s per-position
    outputs (L+1, H) / (L+1, 25) and whose reps are (members, H), all float32. ``backend``:
    see :data:`DEFAULT_BACKEND`.
    """
    if _backend(backend) == "jax":
        from unirep_port.parity import oracle_jax  # jax only when it runs

        return oracle_jax.float32_ensemble(params, seq, size, members=members, seed=seed)
    (seq,) = validate_sequences([seq])
    m = get_size(size)
    cells = [_normed_f32(params, size, i) for i in range(m.n_layers)]
    emb = np.asarray(params[EMBED_KEY], np.float32)
    dw = np.asarray(params[DENSE_W_KEY], np.float32)
    db = np.asarray(params[DENSE_B_KEY], np.float32)
    rng = np.random.default_rng(seed)
    tokens, _ = pad_batch([seq])
    K, hid = members, m.hidden
    c = [np.zeros((K, hid), np.float32) for _ in cells]
    h = [np.zeros((K, hid), np.float32) for _ in cells]
    hs = np.zeros((len(tokens[0]), K, hid), np.float32)
    for t, tok in enumerate(tokens[0]):
        x = np.broadcast_to(emb[tok], (K, emb.shape[1]))  # (K, 10)
        for i, p in enumerate(cells):
            c[i], h[i] = _step(x, c[i], h[i], p)  # (K, H) each, float32
            c[i], h[i] = _nudge(c[i], rng), _nudge(h[i], rng)
            x = h[i]
        hs[t] = x
    hs = np.swapaxes(hs, 0, 1)  # (L+1, K, H) -> (K, L+1, H)
    logits = hs @ dw + db  # (K, L+1, H) @ (H, 25) -> (K, L+1, 25)
    return Outputs(list(hs), list(logits), hs.mean(axis=1), hs[:, -1].copy(), c[-1].copy())


def step_exact(params, size: int, tokens, c_prev, h_prev) -> tuple[np.ndarray, np.ndarray]:
    """The last layer's ``(h, c)`` after one float64 step from each row's float32 state, (N, H)
    each. ``tokens`` (N,): one step per row; ``c_prev``, ``h_prev`` (N, layers, H) float32: the
    states each row starts from."""
    m = get_size(size)
    tokens = np.asarray(tokens)
    c0, h0 = np.asarray(c_prev, np.float32), np.asarray(h_prev, np.float32)
    exact, _, _ = _step_weights(params, size)
    x = np.asarray(params[EMBED_KEY], np.float64)[tokens]  # (N, 10)
    for i in range(m.n_layers):
        c, x = _step(x, c0[:, i].astype(np.float64), h0[:, i].astype(np.float64), exact[i])
    return x, c


def step_members(params, size: int, tokens, c_prev, h_prev, members: int = 16, seed: int = 0):
    """``members`` float32 evaluations of :func:`step_exact`'s step, one ``(h, c)`` (N, H) pair
    of the last layer at a time (float32).

    Member ``k`` sums every matmul in its own order (the contraction axis permuted at random, so
    the BLAS kernel accumulates differently, as another kernel's blocking would) and normalises
    the weights in float32 as TF does (even ``k``) or in float64 then rounded as the port does
    (odd ``k``). Their spread around the float64 step is what summation order and rounding alone
    do to one step on these very inputs. The orders come from ``seed`` alone (drawn in the same
    sequence whatever the rows), so rows stepped in one call or in several get the same members.
    """
    m = get_size(size)
    rng = np.random.default_rng(seed)
    tokens = np.asarray(tokens)
    c0, h0 = np.asarray(c_prev, np.float32), np.asarray(h_prev, np.float32)
    _, tf_style, port_style = _step_weights(params, size)
    emb = np.asarray(params[EMBED_KEY], np.float32)
    for k in range(members):
        x = emb[tokens]  # (N, 10) float32
        for i in range(m.n_layers):
            p = tf_style[i] if k % 2 == 0 else port_style[i]
            c, x = _step_permuted(x, c0[:, i], h0[:, i], p, rng)
        yield x, c


_STEP_WEIGHTS: dict[tuple, tuple] = {}


def _step_weights(params, size: int) -> tuple[list, list, list]:
    """The step's weights, normalised once per weights' content (the last one kept): float64
    (``exact``), float32 as TF normalises (``tf_style``) and float64 rounded (``port_style``)."""
    key = (int(size), params_digest(params))
    if key not in _STEP_WEIGHTS:
        n = get_size(size).n_layers
        exact = [_normed(params, size, i) for i in range(n)]
        tf_style = [_normed_f32_tf(params, size, i) for i in range(n)]
        port_style = [{k: v.astype(np.float32) for k, v in p.items()} for p in exact]
        _STEP_WEIGHTS.clear()  # the 1900 model's are 0.3 GB
        _STEP_WEIGHTS[key] = (exact, tf_style, port_style)
    return _STEP_WEIGHTS[key]


def _normed_f32_tf(
    params: Mapping[str, np.ndarray], size: int, layer: int
) -> dict[str, np.ndarray]:
    """The weight norm computed in float32, as ``tf.nn.l2_normalize(w, 0) * g`` does."""
    p = _cell_arrays(params, size, layer, np.float32)
    out = {"b": p["b"]}
    for w, g in (("wx", "gx"), ("wh", "gh"), ("wmx", "gmx"), ("wmh", "gmh")):
        sq = np.maximum(np.sum(p[w] * p[w], axis=0, keepdims=True), np.float32(1e-12))
        out[w] = p[w] * (np.float32(1) / np.sqrt(sq)) * p[g]  # (n_in, n_out) float32
    return out


def _step_permuted(x, c, h, p, rng: np.random.Generator):
    """:func:`_step` with every matmul's contraction axis in a random order (float32 in, out)."""

    def mm(a, w):  # (N, n) @ (n, k) -> (N, k), summed in a shuffled order
        order = rng.permutation(w.shape[0])
        return a[:, order] @ w[order]

    return _step(x, c, h, p, mm)


def oracle_outputs(
    params: Mapping[str, np.ndarray],
    seqs: Sequence[str],
    size: int,
    batch_size: int = 8,
    backend: str | None = None,
) -> Outputs:
    """Float64 outputs (returned as float64 arrays) for ``seqs`` under canonical ``params``."""
    if _backend(backend) == "jax":
        from unirep_port.parity import oracle_jax  # jax only when it runs

        return oracle_jax.oracle_outputs(params, seqs, size)
    seqs = validate_sequences(seqs)
    m = get_size(size)
    cells = [_normed(params, size, i) for i in range(m.n_layers)]
    emb = np.asarray(params[EMBED_KEY], np.float64)
    dw = np.asarray(params[DENSE_W_KEY], np.float64)
    db = np.asarray(params[DENSE_B_KEY], np.float64)
    n, hid = len(seqs), m.hidden
    hs_out: list = [None] * n
    lg_out: list = [None] * n
    reps = np.zeros((3, n, hid))
    for idx in by_length(seqs, batch_size):
        tokens, lengths = pad_batch([seqs[i] for i in idx])
        B, T = tokens.shape
        c = [np.zeros((B, hid)) for _ in cells]
        h = [np.zeros((B, hid)) for _ in cells]
        hs = np.zeros((B, T, hid))
        c_fin = np.zeros((B, hid))
        for t in range(T):
            x = emb[tokens[:, t]]  # (B, 10)
            for i, p in enumerate(cells):
                c[i], h[i] = _step(x, c[i], h[i], p)  # (B, H) each
                x = h[i]
            hs[:, t] = x
            last = (lengths - 1) == t
            c_fin[last] = c[-1][last]
        for row, i in enumerate(idx):
            L = lengths[row]
            hs_out[i] = hs[row, :L]
            lg_out[i] = hs[row, :L] @ dw + db  # (L, H) @ (H, 25) -> (L, 25)
            reps[0, i] = hs[row, :L].mean(axis=0)
            reps[1, i] = hs[row, L - 1]
            reps[2, i] = c_fin[row]
    return Outputs(hs_out, lg_out, reps[0], reps[1], reps[2])


def remember_states(params, seq: str, size: int, cs: np.ndarray, hs: np.ndarray) -> None:
    """Keep compiled-oracle states computed elsewhere (a batched prefetch) for
    :func:`oracle_states` (the "jax" backend's entry)."""
    (seq,) = validate_sequences([seq])
    put_states((size, seq, params_digest(params), "jax"), cs, hs)


def oracle_states(
    params: Mapping[str, np.ndarray], seq: str, size: int, backend: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 states after every position of one sequence: ``c``, ``h`` (L+1, layers, H).

    The last few results are kept (``oracle_cache``), keyed by the weights' content, the size
    and the sequence: validating several candidates against one original asks for the same
    states each time. Callers get read-only arrays.
    """
    (seq,) = validate_sequences([seq])
    backend = _backend(backend)
    key = (size, seq, params_digest(params), backend)
    kept = get_states(key)
    if kept is not None:
        return kept
    if backend == "jax":
        from unirep_port.parity import oracle_jax  # jax only when it runs

        cs, hs = oracle_jax.oracle_states(params, seq, size)
    else:
        cs, hs = _oracle_states(params, seq, size)
    return put_states(key, cs, hs)


def _oracle_states(params, seq: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    m = get_size(size)
    cells = [_normed(params, size, i) for i in range(m.n_layers)]
    emb = np.asarray(params[EMBED_KEY], np.float64)
    tokens, _ = pad_batch([seq])
    c = np.zeros((m.n_layers, m.hidden))
    h = np.zeros((m.n_layers, m.hidden))
    cs, hs = [], []
    for tok in tokens[0]:
        x = emb[tok]  # (10,)
        for i, p in enumerate(cells):
            c[i], h[i] = _step(x, c[i], h[i], p)  # (H,) each
            x = h[i]
        cs.append(c.copy())
        hs.append(h.copy())
    return np.array(cs), np.array(hs)


def drifts_from_float64(
    params: Mapping[str, np.ndarray],
    size: int,
    seqs: Sequence[str],
    implementations: Mapping[str, Outputs],
    members: int,
    batch_size: int = 32,
    seed: int = 0,
    backend: str | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {stat: (n,)}}``: each implementation's and each of ``members`` nudged float32
    members' per-sequence drift from float64 (``exact.STATS``, ``exact.put_drift``), the
    oracle and the members batched over sequences (``realpanel.drifts_from_float64`` is the
    panel's entry). ``backend``: see :data:`DEFAULT_BACKEND`."""
    if _backend(backend) == "jax":
        from unirep_port.parity import oracle_jax  # jax only when it runs

        return oracle_jax.drifts_from_float64(
            params, size, seqs, implementations, members, batch_size=batch_size, seed=seed
        )
    m = get_size(size)
    cells64 = [_normed(params, size, i) for i in range(m.n_layers)]
    cells32 = [_normed_f32(params, size, i) for i in range(m.n_layers)]
    emb64 = np.asarray(params[EMBED_KEY], np.float64)
    emb32 = np.asarray(params[EMBED_KEY], np.float32)
    rng = np.random.default_rng(seed)
    n, hid, K = len(seqs), m.hidden, members
    names = list(implementations) + [f"member{k}" for k in range(K)]
    out = {name: {s: np.zeros(n) for s in STATS} for name in names}
    for idx in by_length(seqs, batch_size):
        tokens, lengths = pad_batch([seqs[i] for i in idx])
        B, T = tokens.shape
        c64 = [np.zeros((B, hid)) for _ in cells64]
        h64 = [np.zeros((B, hid)) for _ in cells64]
        c32 = [np.zeros((B * K, hid), np.float32) for _ in cells32]
        h32 = [np.zeros((B * K, hid), np.float32) for _ in cells32]
        hs64 = np.zeros((B, T, hid))
        hs32 = np.zeros((B * K, T, hid), np.float32)
        cfin64, cfin32 = np.zeros((B, hid)), np.zeros((B * K, hid), np.float32)
        for t in range(T):
            x64 = emb64[tokens[:, t]]  # (B, 10)
            x32 = np.repeat(emb32[tokens[:, t]], K, axis=0)  # (B*K, 10), rows b*K + k
            for i in range(m.n_layers):
                c64[i], h64[i] = _step(x64, c64[i], h64[i], cells64[i])  # (B, H)
                c32[i], h32[i] = _step(x32, c32[i], h32[i], cells32[i])  # (B*K, H) float32
                c32[i], h32[i] = _nudge(c32[i], rng), _nudge(h32[i], rng)
                x64, x32 = h64[i], h32[i]
            hs64[:, t], hs32[:, t] = x64, x32
            last = (lengths - 1) == t
            cfin64[last] = c64[-1][last]
            cfin32[np.repeat(last, K)] = c32[-1][np.repeat(last, K)]
        for row, i in enumerate(idx):
            L = lengths[row]
            ex_h = hs64[row, :L]  # (L, H)
            ex = Exact(ex_h, ex_h.mean(0), ex_h[L - 1], cfin64[row])
            for name, o in implementations.items():
                put_drift(out[name], i, ex, o.hs[i], o.h_avg[i], o.h_final[i], o.c_final[i])
            for k in range(K):
                h = hs32[row * K + k, :L]
                put_drift(out[f"member{k}"], i, ex, h, h.mean(0), h[L - 1], cfin32[row * K + k])
    return out
