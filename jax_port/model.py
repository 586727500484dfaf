"""The stacked model: hoisted weight preparation, one stacked step, and the reference ``forward``.

``prepare`` builds the :class:`Model` every inference path runs (weight norm and the per-token
input tables hoisted out of the time loop, once, with the model's :class:`cell.CellFns`);
``stack_step`` advances every layer by one token; ``forward`` is the plain differentiable path
over a padded (B, T) batch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from unirep_port.alphabet import VOCAB_SIZE
from unirep_port.jax_port import cell, precision, prepared_cache
from unirep_port.jax_port.params import Params, load_params
from unirep_port.jax_port.types import (
    BH,
    BTH,
    BTO,
    LBH,
    LBias4H,
    LMat,
    LMatT,
    TokB,
    XpHO,
    XpLenB,
    XpTokBT,
    XpV4H,
    XpVecO,
    XpVH,
)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["tab_xw", "tab_xm", "cells", "dense_w", "dense_b"],
    meta_fields=["cell", "out_in"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class Prepared:
    """Loop-invariant weights derived from :class:`Params` once, and the numerics that use them.

    ``tab_xw[t] = embed(t) @ wx_0 + b_0`` and ``tab_xm[t] = embed(t) @ wmx_0`` for each of the 26
    tokens (layer 0's input is always one of them), and the weight-normalised cells with their
    matrices stored transposed, (n_out, n_in) (``out_in``; faster and more accurate on XLA's CPU
    kernels, see ``cell.matmul``), or as TF stores them, (n_in, n_out), where
    :mod:`jax_port.layout` measures that faster at the batch a call runs (:meth:`in_layout`).
    Leaves are jax arrays, or float64 numpy inside :func:`prepare_host`. A
    pytree: the arrays are its leaves and ``cell`` (a hashable :class:`cell.CellFns`) is static,
    so a jitted function taking a ``Prepared`` compiles once per distinct ``cell`` (and shapes),
    never again for the same one.
    """

    tab_xw: XpV4H
    tab_xm: XpVH
    cells: tuple[cell.NormedCell, ...]  # matrices (n_out, n_in): FourHIn, FourHH, HIn, HH
    dense_w: XpHO
    dense_b: XpVecO
    cell: cell.CellFns = cell.DEFAULT_CELL
    out_in: bool = True  # the cells' matrices (n_out, n_in); False: (n_in, n_out)

    def replace(self, **changes) -> Prepared:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def in_layout(self, out_in: bool) -> Prepared:
        """These weights with the cells' matrices stored (n_out, n_in) if ``out_in``, else
        (n_in, n_out) (:mod:`jax_port.layout`): the same numbers, transposed (exact), as host
        arrays (:meth:`Model.on_devices` places them)."""
        if out_in == self.out_in:
            return self

        def t(w):  # a transposed copy in row-major memory, made by NumPy on the host: as jnp
            # ops, each matrix shape's transpose and copy compiled on a process's first call
            return np.ascontiguousarray(np.asarray(w).T)

        cells = tuple(
            c._replace(wx=t(c.wx), wh=t(c.wh), wmx=t(c.wmx), wmh=t(c.wmh)) for c in self.cells
        )
        return self.replace(cells=cells, out_in=out_in)

    def __repr__(self) -> str:
        hid = self.cells[0].wmh.shape[0]
        return f"Prepared(hidden={hid}, layers={len(self.cells)}, cell={_cell_name(self.cell)})"


def _cell_name(fns: cell.CellFns) -> str:
    """``default`` or the fields that differ from ``cell.DEFAULT_CELL``, for reprs."""
    changed = [k for k, v in fns._asdict().items() if v is not getattr(cell.DEFAULT_CELL, k)]
    return "default" if not changed else "custom(" + ", ".join(changed) + ")"


def prepare_weights(params: Params, fns: cell.CellFns = cell.DEFAULT_CELL, xp=jnp) -> Prepared:
    """Weight-normalise every cell and tabulate layer 0's input products per token, with ``fns``.

    With ``xp=jnp`` this is traceable and differentiable. Inference uses :func:`prepare_host`,
    the same functions evaluated in float64 on the host.
    """
    cells = tuple(fns.normalize_cell(c, xp, fns=fns) for c in params.cells)
    x_all = fns.embed(params.embedding, xp.arange(VOCAB_SIZE), xp)  # (26,) -> (26, 10)
    tab_xw, tab_xm = fns.input_proj(
        x_all, cells[0].wx, cells[0].wmx, cells[0].b, xp, fns=fns
    )  # (26, 4H), (26, H)
    t = (lambda w: np.ascontiguousarray(w.T)) if xp is np else (lambda w: w.T)
    cells_t = tuple(
        cell.NormedCell(wx=t(c.wx), wh=t(c.wh), wmx=t(c.wmx), wmh=t(c.wmh), b=c.b) for c in cells
    )  # (n_out, n_in) each
    return Prepared(tab_xw, tab_xm, cells_t, params.dense_w, params.dense_b, fns)


def prepare_host(params: Params, fns: cell.CellFns = cell.DEFAULT_CELL) -> Prepared:
    """:func:`prepare_weights` in float64 on the host, rounded once to float32.

    Weight normalisation and the per-token tables are then correctly rounded instead of
    carrying float32 reduction error (about 3 ulp per weight): this halves the port's distance
    from an exact evaluation on long sequences at no cost per token (measured against the
    float64 oracle in ``parity_tests/oracle.py``). :func:`prepare` builds a :class:`Model` that
    holds the result; where the persistent compilation cache is on, a fresh process reads it
    back from there (:mod:`jax_port.prepared_cache`, bitwise the same arrays).
    """
    if fns is cell.DEFAULT_CELL:  # the only cell whose result is cached
        shapes, tree = jax.tree_util.tree_flatten(prepared_shapes(params, fns))
        cached = prepared_cache.load(params, fns, shapes, tree)
        if cached is not None:
            return cached
    p64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    prep64 = prepare_weights(p64, fns, xp=np)
    out = jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a, np.float32)), prep64)
    prepared_cache.store(params, fns, out)
    return out


def prepared_shapes(params: Params, fns: cell.CellFns = cell.DEFAULT_CELL) -> Prepared:
    """The :class:`Prepared` that :func:`prepare_host` returns for ``params``, its shapes and
    dtypes stated instead of traced: each leaf is a read-only float32 zero of that shape
    (``np.broadcast_to``, no memory), so the object passes the type annotations too.

    ``jax.eval_shape`` of :func:`prepare_weights` gives the same (``tests/test_prepared_cache``
    checks it on every size); tracing it was a visible share of a one-sequence run, which reads
    these shapes only to check the cached file against them (``docs/speed.md``, "Not even a
    lowering", and ``benchmarks/results/history/reps-e2e-issue18.json``).
    """
    zero = np.zeros((), np.float32)

    def f32(*shape):
        return np.broadcast_to(zero, tuple(int(n) for n in shape))

    def t(a):  # a matrix stored transposed, (n_out, n_in)
        return f32(*a.shape[::-1])

    c0 = params.cells[0]
    cells = tuple(
        cell.NormedCell(wx=t(c.wx), wh=t(c.wh), wmx=t(c.wmx), wmh=t(c.wmh), b=f32(*c.b.shape))
        for c in params.cells
    )
    return Prepared(
        f32(VOCAB_SIZE, c0.wx.shape[1]),
        f32(VOCAB_SIZE, c0.wmx.shape[1]),
        cells,
        f32(*params.dense_w.shape),
        f32(*params.dense_b.shape),
        fns,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A prepared UniRep model: what every inference path runs, built by :func:`prepare`.

    ``params``: the raw weights (what evotuning differentiates); ``weights``: the
    host-prepared :class:`Prepared` (which carries ``cell``, the :class:`cell.CellFns`).
    Immutable; pass it as ``params=`` to ``get_reps``, ``iter_reps``, ``get_hidden_states``,
    ``get_logits``, ``babble`` and ``evotune``. The bfloat16-rounded weights of
    ``precision="fast"`` are made on first use and kept on the object (:meth:`cast_weights`).
    """

    params: Params
    weights: Prepared
    _casts: dict = dataclasses.field(default_factory=dict, init=False, repr=False)
    _placed: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

    @property
    def cell(self) -> cell.CellFns:
        return self.weights.cell

    def __repr__(self) -> str:
        return f"Model(hidden={self.hidden}, layers={self.n_layers}, cell={_cell_name(self.cell)})"

    @property
    def hidden(self) -> int:
        return self.params.hidden

    @property
    def n_layers(self) -> int:
        return self.params.n_layers

    def on_devices(
        self, mesh, split: tuple[str, ...] | None = None, out_in: bool = True, stacked=False
    ) -> Prepared | tuple[Prepared, Stack]:
        """``weights`` (or their ``split`` bf16 cast) in the ``out_in`` layout
        (:meth:`Prepared.in_layout`), replicated over ``mesh``'s devices, placed once per mesh
        and kept on the object: a call that runs in milliseconds does not re-place every array
        of the model each time. ``stacked``: ``(weights, their Stack)`` (:func:`stack_cells`),
        both placed once as well."""
        from jax.sharding import NamedSharding, PartitionSpec

        key = (split, out_in, stacked, tuple((d.platform, d.id) for d in mesh.devices.flat))
        if key not in self._placed:
            w = self.weights if split is None else self.cast_weights(split)
            w = w.in_layout(out_in)
            if stacked:
                w = (self.on_devices(mesh, split, out_in), stack_cells(w))
            self._placed[key] = jax.device_put(w, NamedSharding(mesh, PartitionSpec()))
        return self._placed[key]

    def cast_weights(self, split: tuple[str, ...]) -> Prepared:
        """``weights`` with the ``split`` matrices rounded to bfloat16, made once per split."""
        if split not in self._casts:
            self._casts[split] = precision.cast_prepared(self.weights, split)
        return self._casts[split]


def prepare(params=None, size: int = 1900, *, cell: cell.CellFns = cell.DEFAULT_CELL) -> Model:
    """The one constructor of :class:`Model`: load ``params``, prepare them with ``cell``.

    Args:
        params: :class:`Params`, canonical dict, weights file path, a :class:`Model` (re-prepared
            with ``cell``), or None for the published weights of ``size``.
        size: 1900, 256 or 64 (used when ``params`` is None).
        cell: the numerics (default ``cell.DEFAULT_CELL``); a planted bug is
            ``prepare(p, cell=DEFAULT_CELL._replace(sigmoid=bad))`` and reaches every path.
    """
    if isinstance(params, Model):
        params = params.params
    p = load_params(size if params is None else params)
    return Model(p, prepare_host(p, cell))


_MODELS: list[tuple[Params, Model]] = []


def as_model(params=None, size: int = 1900) -> Model:
    """``params`` itself if it is a :class:`Model`, else the default-cell :func:`prepare` of it.

    What the public functions call on their ``params`` argument. The last two default models are
    kept by identity of the loaded :class:`Params` (jax arrays are immutable; dicts and the
    published weights are themselves cached by ``params.load_params``), so repeated calls with the
    same weights prepare them once. Only default-cell models are kept here: a model with another
    ``cell`` is always passed explicitly.
    """
    if isinstance(params, Model):
        return params
    p = load_params(size if params is None else params)
    for held, m in _MODELS:
        if held is p:
            return m
    m = Model(p, prepare_host(p))
    _MODELS.insert(0, (p, m))
    del _MODELS[2:]
    return m


def clear_model_cache() -> None:
    """Forget the default models kept by :func:`as_model`."""
    _MODELS.clear()


Carries = tuple[cell.Carry, ...]  # one (c, h) per layer


def zero_carries(n_layers: int, batch: int, hidden: int) -> Carries:
    """All-zero state, ``rnn.zero_state`` of unirep.py L344."""
    z = jnp.zeros((batch, hidden), jnp.float32)  # (B, H)
    return tuple((z, z) for _ in range(n_layers))


def check_tokens(token_lists, n_rows: int = VOCAB_SIZE) -> None:
    """Raise ValueError naming the first sequence (its index) with a token outside ``0..n_rows-1``.

    The compiled steps look tokens up with clipping (:func:`stack_step`), so a bad token would
    otherwise read a wrong row silently; this host check is one vectorised min/max per sequence.
    """
    for i, t in enumerate(token_lists):
        a = np.asarray(t)
        if a.size and (a.min() < 0 or a.max() >= n_rows):
            pos = int(np.flatnonzero((a < 0) | (a >= n_rows))[0])
            raise ValueError(
                f"sequence {i}: token {int(a[pos])} at position {pos} is outside the model's "
                f"{n_rows}-row token table (0..{n_rows - 1})"
            )


def stack_step(prep: Prepared, tok: TokB, carries: Carries) -> tuple[Carries, BH, BH]:
    """Advance all layers by one token; mirrors unirep.py L283-309 (mLSTMCellStackNPY.call).

    Returns the new carries, the output h (last layer) and the last layer's c. The cell's
    functions are ``prep.cell``'s.

    ``tok`` must hold table rows (0..25): the callers check on the host (:func:`check_tokens`).
    The lookup clips instead of filling out-of-range rows with NaN (``jnp.take``'s default): the
    same numbers for valid tokens, but the fill mode's bounds test and NaN select were fused into
    every gate's loop, and the 1900 chunk's elementwise work per step fell by almost half
    without them (the profiler trace in ``docs/speed.md``, "The step's elementwise work"; the
    same bits: ``tests/test_engine_tail.py``).
    """
    fns, lay = prep.cell, prep.out_in  # lay: the matrices' layout (static)
    xw = jnp.take(prep.tab_xw, tok, axis=0, mode="clip")  # (26, 4H)[(B,)] -> (B, 4H)
    xm = jnp.take(prep.tab_xm, tok, axis=0, mode="clip")  # (26, H)[(B,)] -> (B, H)
    new = []
    h = c = None
    for i, nc in enumerate(prep.cells):
        if i > 0:
            xw, xm = fns.input_proj(h, nc.wx, nc.wmx, nc.b, out_in=lay, fns=fns)  # (B, 4H), (B, H)
        carry, h = fns.mlstm_step(xw, xm, carries[i], nc.wh, nc.wmh, out_in=lay, fns=fns)
        c = carry[0]
        new.append(carry)
    return tuple(new), h, c


class Stack(NamedTuple):
    """The cells' matrices stacked along a leading ``layers`` axis, for :func:`skewed_loop`.

    ``wx``, ``wmx`` and ``b`` are layers 1 and up (layer 0's input products are the per-token
    tables); ``wh`` and ``wmh`` are every layer's; the matrices in their :class:`Prepared`'s
    layout, ``b`` as (L - 1, 1, 4H) so that it broadcasts over the batch axis. Made on the host
    by :func:`stack_cells` (a copy of the narrow models' matrices: a few MB at most).
    """

    wx: LMat | LMatT
    wmx: LMat | LMatT
    b: LBias4H
    wh: LMat | LMatT
    wmh: LMat | LMatT


def stack_cells(prep: Prepared) -> Stack:
    """``prep``'s cells as a :class:`Stack`, stacked by NumPy (host arrays, as
    :meth:`Prepared.in_layout` makes them; :meth:`Model.on_devices` places them)."""

    def st(name, cells):
        return np.stack([np.asarray(getattr(c, name)) for c in cells])  # (L, ...) or (L-1, ...)

    up = prep.cells[1:]
    b = st("b", up)[:, None, :]  # (L-1, 4H) -> (L-1, 1, 4H)
    return Stack(st("wx", up), st("wmx", up), b, st("wh", prep.cells), st("wmh", prep.cells))


def skewed_step(prep: Prepared, stack: Stack, tok: TokB, c: LBH, h: LBH) -> tuple[LBH, LBH]:
    """Every layer one step, layer ``i`` on the token ``i`` steps behind layer 0's ``tok``.

    ``c``, ``h``: (L, B, H), layer ``i``'s state after its last token. Layer 0's input is
    ``tok``'s table rows; layer ``i > 0``'s is ``h[i - 1]``, the output the layer below gave one
    iteration earlier, for the very token layer ``i`` takes now. So no layer waits on another,
    and each of the step's products is one batched product over the layers (``cell.matmul`` on a
    :class:`Stack`) instead of one per layer: at one row the 64 model's loop body is 50 small XLA
    kernels with :func:`stack_step` and 18 with this (``docs/speed.md``). Each layer's
    arithmetic is :func:`stack_step`'s, the same functions of ``prep.cell`` on the same inputs,
    and the same bits (``tests/test_skewed_loop.py``). ``tok``: table rows, checked on the host.
    """
    fns, lay = prep.cell, prep.out_in
    xw0 = jnp.take(prep.tab_xw, tok, axis=0, mode="clip")  # (26, 4H)[(B,)] -> (B, 4H)
    xm0 = jnp.take(prep.tab_xm, tok, axis=0, mode="clip")  # (26, H)[(B,)] -> (B, H)
    xw, xm = fns.input_proj(h[:-1], stack.wx, stack.wmx, stack.b, out_in=lay, fns=fns)
    xw = jnp.concatenate([xw0[None], xw])  # (1, B, 4H) + (L-1, B, 4H) -> (L, B, 4H)
    xm = jnp.concatenate([xm0[None], xm])  # (1, B, H) + (L-1, B, H) -> (L, B, H)
    (c, h), _ = fns.mlstm_step(xw, xm, (c, h), stack.wh, stack.wmh, out_in=lay, fns=fns)
    return c, h


def skewed_loop(prep: Prepared, stack: Stack, tokens_t, n_steps, on_top, acc):
    """:func:`stack_step` over ``n_steps`` tokens from zero states, as a wavefront: iteration
    ``s`` runs :func:`skewed_step`, layer ``i`` on token ``s - i``.

    Layer ``i`` starts at iteration ``i``: until then its state is reset to zero before each
    step (a select, exact). The reset is made on the step's inputs, not its outputs, so that XLA
    fuses the top layer's output into ``on_top`` as it does in :func:`stack_step`'s loop (a select
    between them changed how the running sum of ``h`` was rounded). The loop runs
    ``n_steps + L - 1`` iterations, until the top layer has taken token ``n_steps - 1``; the lower
    layers' last iterations read the last row of ``tokens_t`` again (outputs nothing takes).

    Args:
        tokens_t: (T, B) int32 tokens, time-major, T >= ``n_steps``.
        n_steps: () int32, the trip count of the top layer (a traced value, not a shape).
        on_top: ``on_top(t, h, c, acc) -> acc`` folds the top layer's (B, H) output at token
            ``t`` into ``acc``. ``t`` is negative in the first ``L - 1`` iterations, before the
            top layer has started, and ``h``, ``c`` are then not a token's: mask them.
        acc: the fold's start; the loop returns its end.
    """
    n_layers, last = stack.wh.shape[0], tokens_t.shape[0] - 1
    layer = jnp.arange(n_layers, dtype=jnp.int32).reshape(n_layers, 1, 1)  # (L, 1, 1)
    z = jnp.zeros((n_layers, tokens_t.shape[1], prep.cells[0].wmh.shape[0]), jnp.float32)

    def body(st):
        s, c, h, acc = st
        tok = jax.lax.dynamic_index_in_dim(tokens_t, jnp.minimum(s, last), 0, keepdims=False)
        started = layer < s  # (L, 1, 1): the layers whose state is a token's (the rest: zero)
        c, h = jnp.where(started, c, 0.0), jnp.where(started, h, 0.0)
        c, h = skewed_step(prep, stack, tok, c, h)  # (L, B, H) each
        return s + 1, c, h, on_top(s - (n_layers - 1), h[-1], c[-1], acc)

    def cond(st):
        return st[0] < n_steps + (n_layers - 1)

    return jax.lax.while_loop(cond, body, (jnp.int32(0), z, z, acc))[3]


def forward(
    params: Params, tokens: XpTokBT, lengths: XpLenB, fns: cell.CellFns = cell.DEFAULT_CELL
) -> tuple[BTH, BTO]:
    """Per-position outputs of a padded batch; the differentiable reference-style path.

    Mirrors the babbler graph of unirep.py L312-395: embedding lookup, ``dynamic_rnn`` over time
    (L356-362), the logit layer (L372-376). Unlike the fast path it embeds tokens and computes
    the input products per step, without the per-token tables.

    Args:
        params: model parameters.
        tokens: (B, T) int32 tokens, start token first, padded with 0 after ``lengths[b]``.
        lengths: (B,) number of real tokens (start token included).
        fns: the cell's functions (static under ``jit``).

    Returns:
        ``hs`` (B, T, H) output h (zero at padding) and ``logits`` (B, T, 25).
    """
    cells = tuple(fns.normalize_cell(c, fns=fns) for c in params.cells)
    x = fns.embed(params.embedding, tokens)  # (B, T) -> (B, T, 10)
    bsz, hid = tokens.shape[0], params.hidden

    def step(carries, x_t):
        new, inp = [], x_t  # (B, 10)
        for i, nc in enumerate(cells):
            xw, xm = fns.input_proj(inp, nc.wx, nc.wmx, nc.b, fns=fns)  # (B, 4H), (B, H)
            carry, inp = fns.mlstm_step(xw, xm, carries[i], nc.wh, nc.wmh, fns=fns)  # (B, H)
            new.append(carry)
        return tuple(new), inp

    _, hs = jax.lax.scan(step, zero_carries(len(cells), bsz, hid), jnp.swapaxes(x, 0, 1))
    hs = jnp.swapaxes(hs, 0, 1)  # (T, B, H) -> (B, T, H)
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, T)
    hs = jnp.where(mask[..., None], hs, 0.0)  # (B, T, H)
    return hs, fns.logits(hs, params.dense_w, params.dense_b)  # (B, T, 25)


def forward_prepared(prep: Prepared, tokens: XpTokBT, lengths: XpLenB) -> tuple[BTH, BTO]:
    """Per-position outputs for inference, from :func:`prepare_host` weights.

    Runs the very :func:`stack_step` the reps engine runs, so per-position states and reps come
    from one code path. Same arguments and results as :func:`forward`.
    """
    bsz, hid = tokens.shape[0], prep.cells[0].wmh.shape[0]

    def step(carries, tok):  # tok: (B,)
        carries, h, _ = stack_step(prep, tok, carries)  # h: (B, H)
        return carries, h

    carries0 = zero_carries(len(prep.cells), bsz, hid)
    _, hs = jax.lax.scan(step, carries0, jnp.swapaxes(tokens, 0, 1))  # (T, B, H)
    hs = jnp.swapaxes(hs, 0, 1)  # (T, B, H) -> (B, T, H)
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, T)
    hs = jnp.where(mask[..., None], hs, 0.0)  # (B, T, H)
    return hs, prep.cell.logits(hs, prep.dense_w, prep.dense_b)  # (B, T, 25)
