"""Planted porting bugs: prepared models of the JAX port whose cell has one wrong function.

Each bug replaces one field of the port's :class:`jax_port.CellFns` (``DEFAULT_CELL._replace``)
and :func:`plant` prepares a :class:`jax_port.Model` with it, which every path runs when passed as
``params`` (reps engine, per-position outputs, babbling, evotuning). Nothing global is patched,
so nothing needs restoring and no cache needs clearing; the shipped default is never changed. A
parity suite that lets any of these through is too weak; ``test_kill_rate`` asserts it catches
every one and reports the rate.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp


def _bugs() -> dict[str, tuple[str, str, Callable]]:
    """name -> (description, ``CellFns`` field, make_replacement(original))."""

    def wrong_slope_sigmoid(orig):
        # The seed paper's bug: tanh-based sigmoid without halving the argument.
        return lambda x: 0.5 * jnp.tanh(x) + 0.5

    def norm_wrong_axis(orig):
        def weight_norm(w, g, xp=jnp):
            sq = xp.sum(w * w, axis=1, keepdims=True)  # (n_in, n_out) -> (n_in, 1): wrong axis
            return w / xp.sqrt(xp.maximum(sq, 1e-12)) * g

        return weight_norm

    def gates_swapped(orig):
        def gate_split(z):
            i, f, o, u = orig(z)
            return f, i, o, u  # input and forget gates exchanged

        return gate_split

    def no_start_token(orig):
        return lambda seq, stop=False: orig(seq, stop)[1:]

    def final_past_end(orig):
        def update_reps(reps, h, c, valid):
            h_sum, _, _ = reps
            h_sum = h_sum + jnp.where(valid[:, None], h, 0.0)
            return h_sum, h, c  # final state overwritten by padding steps

        return update_reps

    def padding_in_mean(orig):
        def update_reps(reps, h, c, valid):
            h_sum, h_fin, c_fin = reps
            v = valid[:, None]
            return h_sum + h, jnp.where(v, h, h_fin), jnp.where(v, c, c_fin)

        return update_reps

    def embedding_off_by_one(orig):
        return lambda embedding, tokens, xp=jnp: orig(
            embedding, (tokens + 1) % embedding.shape[0], xp
        )

    def carry_swapped(orig):
        def mlstm_step(xw, xm, carry, wh, wmh, **kw):
            (c, h), out = orig(xw, xm, carry, wh, wmh, **kw)
            return (h, c), out  # h and c exchanged in the carry

        return mlstm_step

    def no_weight_norm(orig):
        return lambda w, g, xp=jnp: w * g  # gain applied to the raw, unnormalised matrix

    def wmh_transposed(orig):
        def normalize_cell(p, xp=jnp, **kw):
            n = orig(p, xp, **kw)
            return n._replace(wmh=n.wmh.T)

        return normalize_cell

    return {
        "sigmoid_wrong_slope": ("sigmoid as 0.5*tanh(x)+0.5", "sigmoid", wrong_slope_sigmoid),
        "l2_norm_wrong_axis": ("weight norm over axis 1", "weight_norm", norm_wrong_axis),
        "gate_order_swapped": ("i and f gates exchanged", "gate_split", gates_swapped),
        "missing_start_token": ("start token 24 dropped", "tokenize", no_start_token),
        "final_state_past_end": (
            "final h/c read past the padded end",
            "update_reps",
            final_past_end,
        ),
        "padding_in_mean": ("padding positions in h_avg", "update_reps", padding_in_mean),
        "embedding_off_by_one": ("embedding row t+1", "embed", embedding_off_by_one),
        "h_c_swapped_in_carry": ("carry (h, c) for (c, h)", "mlstm_step", carry_swapped),
        "weight_norm_missing": ("g times the raw matrix", "weight_norm", no_weight_norm),
        "wmh_transposed": ("wmh used transposed", "normalize_cell", wmh_transposed),
    }


BUG_NAMES = (
    "sigmoid_wrong_slope",
    "l2_norm_wrong_axis",
    "gate_order_swapped",
    "missing_start_token",
    "final_state_past_end",
    "padding_in_mean",
    "embedding_off_by_one",
    "h_c_swapped_in_carry",
    "weight_norm_missing",
    "wmh_transposed",
)


def describe(name: str) -> str:
    return _bugs()[name][0]


def planted_cell(name: str):
    """The default :class:`jax_port.CellFns` with bug ``name``'s field replaced."""
    from unirep_port.jax_port import DEFAULT_CELL

    _, field, make = _bugs()[name]
    return DEFAULT_CELL._replace(**{field: make(getattr(DEFAULT_CELL, field))})


def plant(name: str, params, size: int | None = None):
    """A :class:`jax_port.Model` of ``params`` (anything ``jax_port.prepare`` takes) with bug
    ``name``; pass it as ``params`` to any port function."""
    from unirep_port import jax_port

    return jax_port.prepare(params, size or 1900, cell=planted_cell(name))


def kill_rate_section(caught: dict[tuple[int, str], bool], sizes) -> dict:
    """The report's ``planted bugs (kill rate)`` section from the whole (size, bug) matrix.

    The one place the kill rate is computed. ``caught[(size, bug)]`` is whether the parity
    comparison failed with ``bug`` planted; every bug of :data:`BUG_NAMES` at every size must be
    there (a partial matrix, e.g. from a ``-k`` selection, would report a rate of a subset), so a
    missing cell raises, naming it.
    """
    want = [(s, b) for s in sorted(sizes) for b in BUG_NAMES]
    missing = [cell for cell in want if cell not in caught]
    if missing:
        raise ValueError(f"kill matrix incomplete: no result for (size, bug) {missing}")
    rows = [
        {"size": s, "bug": b, "what": describe(b), "caught": bool(caught[(s, b)])} for s, b in want
    ]
    n = sum(r["caught"] for r in rows)
    return {
        "ok": n == len(rows),
        "summary": f"kill rate {n}/{len(rows)} = {n / len(rows):.0%} (sizes {sorted(sizes)}, "
        f"{len(BUG_NAMES)} planted bugs each; every bug must make the comparison fail)",
        "kill_rate": n / len(rows),
        "rows": rows,
    }
