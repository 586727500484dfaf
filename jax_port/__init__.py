"""JAX port of UniRep (mLSTM 1900 / 256x4 / 64x4), fast and faithful.

Public API: :func:`get_reps`, :func:`fusion_reps`, :func:`iter_reps`, :func:`get_hidden_states`,
:func:`get_logits`, :func:`babble`, :func:`precision_error_report`, :func:`forward`,
:func:`prepare` / :class:`Model` / :class:`CellFns` / :data:`DEFAULT_CELL`,
:class:`Params` / :func:`from_canonical` / :func:`to_canonical` / :func:`load_params`,
:func:`compile_count`, :func:`clear_caches`; fine-tuning: :func:`evotune`, :func:`lr_search`,
:func:`train_step`, :func:`init_opt_state`, :func:`make_batch`, ``evotune_loss`` (the subpackage
:mod:`jax_port.evotuning` has the rest).

Every path runs a prepared :class:`Model` (``prepare(params, size, cell=...)``): the
host-prepared weights plus a :class:`CellFns`, the immutable record of the cell's functions
(tokenize, embed, weight_norm, normalize_cell, matmul, input_proj, gate_split, sigmoid, tanh,
mlstm_step, update_reps, logits; see ``jax_port.cell``). Passing ``params`` that are not a
``Model`` uses the default cell. A variant, e.g. a planted bug, is an explicit value::

    bad = jax_port.prepare(p, cell=jax_port.DEFAULT_CELL._replace(sigmoid=my_sigmoid))
    jax_port.get_reps(seqs, bad)                  # reps engine
    jax_port.get_hidden_states(seqs, bad)         # per-position path
    jax_port.evotune(seqs, bad)                   # training, fused backward included

and compiles on its own, beside the default, with nothing to clear or restore.
"""

import jax

from unirep_port.jax_port import model, params
from unirep_port.jax_port.api import (
    encode,
    fusion_reps,
    get_reps,
    iter_reps,
    precision_error_report,
)
from unirep_port.jax_port.cell import DEFAULT_CELL, CellFns
from unirep_port.jax_port.engine import compile_count, run_stats
from unirep_port.jax_port.model import Model, Prepared, forward, prepare
from unirep_port.jax_port.params import (
    CellParams,
    Params,
    from_canonical,
    load_params,
    to_canonical,
)
from unirep_port.jax_port.positions import babble, get_hidden_states, get_logits

# Fine-tuning lives in the subpackage ``jax_port.evotuning``; its main names are re-exported here
# (``from jax_port import evotune`` gives the function, as in jax-unirep). ``evotune_loss`` is the
# loss function under jax-unirep's name. Imported on first use: otherwise every ``reps`` run pays
# optax's import (its cost: the profile in ``benchmarks/results/history/reps-e2e-issue18.json``).
_EVOTUNING = {
    "evotune": "evotune",
    "init_opt_state": "init_opt_state",
    "lr_search": "lr_search",
    "make_batch": "make_batch",
    "train_step": "train_step",
    "evotune_loss": "loss",
}


def __getattr__(name: str):
    if name in _EVOTUNING:
        from unirep_port.jax_port import evotuning

        return getattr(evotuning, _EVOTUNING[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def clear_caches() -> None:
    """Free the port's remembered weights and every compiled function (``jax.clear_caches()``).

    Never needed for correctness with a different cell (a :class:`Model` with another
    :class:`CellFns` compiles on its own). What it still does: forget the published weights and
    converted dicts (``params.clear_param_cache``; needed after editing a weights dict's arrays
    *in place*) and the default models kept for them (``model.clear_model_cache``), and free
    memory.
    """
    params.clear_param_cache()
    model.clear_model_cache()
    jax.clear_caches()


__all__ = [
    "DEFAULT_CELL",
    "CellFns",
    "CellParams",
    "Model",
    "Params",
    "Prepared",
    "babble",
    "clear_caches",
    "compile_count",
    "encode",
    "evotune",
    "evotune_loss",
    "forward",
    "from_canonical",
    "fusion_reps",
    "get_hidden_states",
    "get_logits",
    "get_reps",
    "init_opt_state",
    "iter_reps",
    "load_params",
    "lr_search",
    "make_batch",
    "precision_error_report",
    "prepare",
    "run_stats",
    "to_canonical",
    "train_step",
]
