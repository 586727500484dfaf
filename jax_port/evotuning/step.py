"""Jitted training steps for evotuning: Adam (:func:`train_step`) and plain SGD (:func:`sgd_steps`).

The original evotuning recipe (UniRep paper; churchlab/UniRep ``babbler.get_babbler_ops``) trains
the babbler's loss (unirep.py L382-388) with Adam. Here the optimiser state comes from
``optax.inject_hyperparams(optax.adam)``, so the learning rate lives in ``opt_state`` and one
compiled ``train_step`` serves every learning rate.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import optax

from unirep_port.jax_port.cell import DEFAULT_CELL, CellFns
from unirep_port.jax_port.evotuning.objective import DEFAULT_BLOCK, MaskBT, loss
from unirep_port.jax_port.params import Params
from unirep_port.jax_port.types import XpTokBT

# (tokens_in, targets, mask), see make_batch: host arrays, tracers inside the jitted steps.
Batch = tuple[XpTokBT, XpTokBT, MaskBT]


def make_optimizer(lr: float) -> optax.GradientTransformation:
    """Adam with its learning rate held in the optimiser state (changeable without recompiling)."""
    if not lr > 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    return optax.inject_hyperparams(optax.adam)(learning_rate=float(lr))


def init_opt_state(params: Params, lr: float = 1e-5) -> optax.OptState:
    """Fresh Adam state for ``params`` with learning rate ``lr``."""
    return make_optimizer(lr).init(params)


@functools.partial(jax.jit, static_argnames=("remat", "tbptt", "block", "fused", "cell"))
def train_step(
    params: Params,
    opt_state: optax.OptState,
    batch: Batch,
    *,
    remat: bool = True,
    tbptt: int | None = None,
    block: int = DEFAULT_BLOCK,
    fused: bool = True,
    cell: CellFns = DEFAULT_CELL,
) -> tuple[Params, optax.OptState, jax.Array]:
    """One Adam step on one batch; returns ``(new_params, new_opt_state, loss)``.

    Args:
        params: current parameters.
        opt_state: from :func:`init_opt_state` (the learning rate is read from it).
        batch: ``(tokens_in, targets, mask)`` of :func:`jax_port.evotuning.objective.make_batch`.
        remat, tbptt, block, fused, cell: see :func:`jax_port.evotuning.objective.loss`
            (static: each value compiles once; so does each batch shape).

    Usable in a user's own loop::

        state = init_opt_state(params, 1e-4)
        for batch in batches:
            params, state, value = train_step(params, state, batch)
    """
    tokens_in, targets, mask = batch
    value, grads = jax.value_and_grad(loss)(
        params,
        tokens_in,
        targets,
        mask,
        remat=remat,
        tbptt=tbptt,
        block=block,
        fused=fused,
        cell=cell,
    )
    opt = make_optimizer(1.0)  # placeholder lr: inject_hyperparams reads the one in opt_state
    # optax's Adam takes its bias correction as ``1 - decay**count``, a float to the power of the
    # int32 step count, which ``jax_numpy_dtype_promotion="strict"`` refuses: the update alone
    # runs under JAX's standard promotion, the port's own arithmetic under the caller's setting.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value


@functools.partial(jax.jit, static_argnames=("remat", "tbptt", "block", "cell"))
def eval_loss(
    params: Params,
    batch: Batch,
    *,
    remat: bool = False,
    tbptt: int | None = None,
    block: int = DEFAULT_BLOCK,
    cell: CellFns = DEFAULT_CELL,
) -> jax.Array:
    """The loss of one batch without gradients (jitted)."""
    tokens_in, targets, mask = batch
    return loss(params, tokens_in, targets, mask, remat=remat, tbptt=tbptt, block=block, cell=cell)


@functools.partial(jax.jit, static_argnames=("remat", "block", "cell"))
def _sgd_step(
    params: Params,
    batch: Batch,
    lr,
    *,
    remat: bool = True,
    block: int = DEFAULT_BLOCK,
    cell: CellFns = DEFAULT_CELL,
):
    tokens_in, targets, mask = batch
    value, grads = jax.value_and_grad(loss)(
        params, tokens_in, targets, mask, remat=remat, block=block, cell=cell
    )
    new = jax.tree.map(lambda p, g: p - lr * g, params, grads)  # w <- w - lr * dL/dw
    return new, value


def sgd_steps(
    params: Params,
    batches: Iterable[Batch],
    lr: float,
    n: int,
    *,
    remat: bool = True,
    cell: CellFns = DEFAULT_CELL,
) -> tuple[Params, list[float]]:
    """``n`` plain SGD steps (``w -= lr * grad``), cycling through ``batches`` in order.

    The JAX side of ``reference_tf.train.sgd_steps`` (tf.compat.v1.train.GradientDescentOptimizer)
    for parity tests. Returns the new parameters and the loss before each step.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("sgd_steps needs at least one batch")
    losses = []
    lr = jnp.float32(lr)
    for k in range(n):
        params, value = _sgd_step(params, batches[k % len(batches)], lr, remat=remat, cell=cell)
        losses.append(float(value))
    return params, losses
