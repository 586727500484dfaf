"""Fast mode's teacher-forced step check: does the port compute the bf16 design it declares?

The design (``jax_port.precision``): the matrices of ``FAST_SPLIT`` (``wh`` in every layer,
``wx`` above layer 0) rounded to bfloat16, the vector each one multiplies rounded to bfloat16 at
the product, the products accumulated in float32, everything else float32. Its cost is what the
certificate's tables and downstream section report; this check asks only whether the port
computes that design and nothing coarser, and it needs no tolerance read off a machine.

Every position ``t`` of a sequence starts from the float64 oracle's state after ``t - 1``
(rounded to float32, as ``parity.stepwise`` does), and three things take one step from it:

* the port: ``model.stack_step`` on its bfloat16-cast prepared weights (the fast path's step);
* the design in float64: the same roundings to bfloat16, exact arithmetic otherwise (the
  reference; the kit's one NumPy step, ``oracle._step``);
* :data:`WITNESSES` float32 evaluations of the design, written apart from the port: each sums
  every matmul in its own shuffled order (as ``oracle.step_members`` does) and rounds to
  bfloat16 where the design does.

A faithful fast mode is one more float32 evaluation of the design, so its step errors from the
float64 design step are draws from the witnesses' distribution; that includes the rare places
where a float32 difference carries a value across a bfloat16 rounding boundary, which every
evaluation meets alike. ``drift.bulk_test`` then fails the port when its typical
(geometric-mean) step error is significantly more than ``drift.BULK_FACTOR`` times the
witnesses', at level ``drift.ALPHA_BULK`` (its derivation is in ``porting/drift.py``). Nothing
about the CPU enters: an AMX tile, an AVX512_BF16 dot or XLA's own loop only sums in another
order. Anything outside the design -- another matrix in bfloat16 (``wmh``, ``wmx``), a bfloat16
cell state, a bfloat16 accumulator -- adds errors of bfloat16's unit roundoff (2^-8) where the
witnesses have float32's (2^-24), a factor far beyond any statistical margin
(``parity_tests/tests/test_fastmode.py`` plants both and shows they fail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

WITNESSES = 8  # float32 evaluations of the design per size (bulk_test needs at least 3)
# Panel sequences stepped (``parity.panel``): the protein the downstream section is about. A bug
# outside the design moves every step by bf16's rounding, so one protein's positions are plenty.
STEP_IDS = ("avGFP_WT",)


def bf16(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to bfloat16 (round to nearest even) from its float32 value, in ``a``'s
    dtype: the rounding the port applies to a float32 vector at a product."""
    import ml_dtypes

    return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(a.dtype)


def _design_weights(
    layers: list[dict], split: Sequence[str], rounded_from: list[dict] | None = None
) -> tuple[list[dict], set[int]]:
    """Per layer, ``layers``' weights with the ``split`` matrices replaced by bfloat16 roundings
    of the float32 ones in ``rounded_from`` (default ``layers``; ``cast_prepared`` rounds the
    port's float32 prepared weights), and the ids of the rounded matrices (a product with one of
    them rounds its vector too). Layer 0's ``wx`` is not rounded: the port tabulates layer 0's
    input products per token on the host."""
    out, rounded = [], set()
    for i, p in enumerate(layers):
        q = dict(p)
        for name in split:
            if name == "wx" and i == 0:
                continue
            q[name] = bf16((rounded_from or layers)[i][name]).astype(p[name].dtype)
            rounded.add(id(q[name]))
        out.append(q)
    return out, rounded


def _design_steps(params, size: int, tokens, c_prev, h_prev, layers, rounded, mm):
    """One design step per row from each row's float32 state: last layer ``(h, c)`` (N, H)."""
    from unirep_port.parity.oracle import _step
    from unirep_port.sizes import EMBED_KEY

    dtype = layers[0]["wh"].dtype
    x = np.asarray(params[EMBED_KEY], dtype)[np.asarray(tokens)]  # (N, 10)
    c = None
    for i, p in enumerate(layers):

        def mm_design(a, w, _mm=mm):  # the vector rounded where its matrix is
            return _mm(bf16(a) if id(w) in rounded else a, w)

        c, x = _step(x, c_prev[:, i].astype(dtype), h_prev[:, i].astype(dtype), p, mm_design)
    return x, c


def step_errors(params: Mapping[str, np.ndarray], size: int, seqs: Sequence[str], prep) -> dict:
    """The port's and the witnesses' teacher-forced step errors from the float64 design step.

    Args:
        params: canonical weights; size: 1900, 256 or 64; seqs: the sequences stepped.
        prep: the port's prepared weights as the fast path runs them
            (``precision.cast_prepared(model.prepare_host(p), FAST_SPLIT)``; a planted fast mode
            passes its own).

    Returns:
        ``{"port": {"h", "c"}, "witnesses": {"h", "c"}, "scale": {"h", "c"}}``: per place
        (position of every sequence) the largest ``|h - h_design|`` over units and the largest
        ``|c - c_design|`` relative to that step's largest ``|c_design|`` (``parity.stepwise``'s
        measures), (P,) for the port and (WITNESSES, P) for the witnesses; ``scale``: one
        float32 ulp of the value there.
    """
    from unirep_port.jax_port import precision
    from unirep_port.parity.drift import U32
    from unirep_port.parity.oracle import _step_weights
    from unirep_port.parity.stepwise import _err_c, _err_h, _inputs, _port_steps

    parts = [_inputs(params, s, size)[2:] for s in seqs]
    tokens = np.concatenate([t for t, _, _ in parts])
    c_prev = np.concatenate([c for _, c, _ in parts])  # (P, layers, H) float32
    h_prev = np.concatenate([h for _, _, h in parts])
    h_port, c_port = _port_steps(prep, tokens, c_prev, h_prev)
    exact, tf_style, port_style = _step_weights(params, size)
    split = precision.FAST_SPLIT
    d64, r64 = _design_weights(exact, split, port_style)  # float64; split: the port's bf16
    h_ex, c_ex = _design_steps(params, size, tokens, c_prev, h_prev, d64, r64, np.matmul)
    rng = np.random.default_rng(0)

    def shuffled(a, w):  # (N, n) @ (n, k) -> (N, k), summed in a shuffled order (float32)
        order = rng.permutation(w.shape[0])
        return a[:, order] @ w[order]

    wh, wc = [], []
    for k in range(WITNESSES):
        d32, r32 = _design_weights(tf_style if k % 2 == 0 else port_style, split, port_style)
        h, c = _design_steps(params, size, tokens, c_prev, h_prev, d32, r32, shuffled)
        wh.append(_err_h(h, h_ex))
        wc.append(_err_c(c, c_ex))
    return {
        "port": {"h": _err_h(h_port, h_ex), "c": _err_c(c_port, c_ex)},
        "witnesses": {"h": np.array(wh), "c": np.array(wc)},
        "scale": {"h": U32 * np.abs(h_ex).max(axis=1), "c": np.full(len(tokens), U32)},
    }


def step_check(params: Mapping[str, np.ndarray], size: int, seqs: Sequence[str], prep=None) -> dict:
    """The verdict of :func:`step_errors` (``prep`` default: the fast path's own weights):
    ``drift.bulk_test`` on ``h`` and on ``c``; ``ok`` when both pass."""
    from unirep_port.jax_port import model, precision
    from unirep_port.jax_port.params import load_params
    from unirep_port.parity.drift import bulk_test

    if prep is None:
        host = model.prepare_host(load_params(params))
        prep = precision.cast_prepared(host, precision.FAST_SPLIT)
    e = step_errors(params, size, seqs, prep)
    tests = {
        name: bulk_test(e["port"][name], e["witnesses"][name], e["scale"][name])
        for name in ("h", "c")
    }
    return {
        "ok": bool(all(t["ok"] for t in tests.values())),
        "n_places": int(e["port"]["h"].size),
        "witnesses": WITNESSES,
        "h": tests["h"],
        "c": tests["c"],
        "port_max": {k: float(v.max()) for k, v in e["port"].items()},
        "witness_max": {k: float(v.max()) for k, v in e["witnesses"].items()},
        "rule": "teacher-forced step from the float64 state: the port's error from the float64 "
        "bf16 design step must not be significantly more than BULK_FACTOR x that of float32 "
        "witnesses of the design (drift.bulk_test)",
    }
