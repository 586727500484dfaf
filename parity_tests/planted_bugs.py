"""Planted porting bugs, applied to the JAX port inside the test harness only.

Each bug swaps one module-level function of the port (the port resolves them at trace time) for
a wrong one, inside a context manager that restores the original and clears the port's compile
caches on entry and exit. The shipped code path is never changed. A parity suite that lets any of
these through is too weak; ``test_kill_rate`` asserts it catches every one and reports the rate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import jax.numpy as jnp

from unirep_port import alphabet


def _bugs() -> dict[str, tuple[str, object, str, Callable]]:
    """name -> (description, module, attribute, make_replacement(original))."""
    from unirep_port.jax_port import cell, model

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
        def normalize_cell(p, xp=jnp):
            n = orig(p, xp)
            return n._replace(wmh=n.wmh.T)

        return normalize_cell

    return {
        "sigmoid_wrong_slope": ("sigmoid as 0.5*tanh(x)+0.5", cell, "sigmoid", wrong_slope_sigmoid),
        "l2_norm_wrong_axis": ("weight norm over axis 1", cell, "weight_norm", norm_wrong_axis),
        "gate_order_swapped": ("i and f gates exchanged", cell, "gate_split", gates_swapped),
        "missing_start_token": ("start token 24 dropped", alphabet, "tokenize", no_start_token),
        "final_state_past_end": (
            "final h/c read past the padded end",
            cell,
            "update_reps",
            final_past_end,
        ),
        "padding_in_mean": ("padding positions in h_avg", cell, "update_reps", padding_in_mean),
        "embedding_off_by_one": ("embedding row t+1", cell, "embed", embedding_off_by_one),
        "h_c_swapped_in_carry": ("carry (h, c) for (c, h)", cell, "mlstm_step", carry_swapped),
        "weight_norm_missing": ("g times the raw matrix", cell, "weight_norm", no_weight_norm),
        "wmh_transposed": ("wmh used transposed", model.cell, "normalize_cell", wmh_transposed),
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


@contextlib.contextmanager
def planted(name: str) -> Iterator[None]:
    """Run the body with bug ``name`` applied to the port; always restores and clears caches."""
    from unirep_port import jax_port

    _, module, attr, make = _bugs()[name]
    original = getattr(module, attr)
    setattr(module, attr, make(original))
    jax_port.clear_caches()
    try:
        yield
    finally:
        setattr(module, attr, original)
        jax_port.clear_caches()
