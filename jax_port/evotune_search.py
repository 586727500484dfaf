"""Learning-rate search for evotuning with Optuna (an optional dependency)."""

from __future__ import annotations

from collections.abc import Sequence


def _optuna():
    try:
        import optuna
    except ImportError as err:
        raise ImportError(
            "lr_search needs Optuna, which is not installed; `pip install optuna` "
            "(or pick a learning rate by hand and call evotune(..., lr=...))"
        ) from err
    return optuna


def lr_search(
    sequences: Sequence[str],
    n_trials: int = 10,
    *,
    lr_range: tuple[float, float] = (1e-6, 1e-3),
    seed: int = 0,
    holdout: float = 0.2,
    **evotune_kwargs,
) -> tuple[float, list[dict]]:
    """Pick an Adam learning rate by the held-out loss of short evotuning runs.

    Each trial draws ``lr`` log-uniformly from ``lr_range`` (Optuna's seeded TPE sampler) and
    runs :func:`jax_port.evotune.evotune` with the same split (``seed``) and ``evotune_kwargs``
    (e.g. ``params``, ``size``, ``epochs=2``, ``batch_size``); the objective is the best held-out
    loss of the run.

    Returns:
        ``(best_lr, trials)`` where trials lists ``{"lr", "holdout_loss"}`` per trial.

    Raises:
        ImportError: Optuna is missing (with the install command).
        ValueError: ``holdout`` is 0 (the search needs held-out data) or the range is empty.
    """
    optuna = _optuna()
    from unirep_port.jax_port.evotune import evotune  # late: evotune imports this module

    lo, hi = lr_range
    if not 0 < lo < hi:
        raise ValueError(f"lr_range must satisfy 0 < low < high, got {lr_range}")
    if not holdout > 0:
        raise ValueError("lr_search needs held-out data: holdout must be > 0")
    evotune_kwargs.setdefault("progress", False)

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", lo, hi, log=True)
        _, hist = evotune(sequences, lr=lr, seed=seed, holdout=holdout, **evotune_kwargs)
        return min(e["holdout_loss"] for e in hist["epochs"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    trials = [{"lr": t.params["lr"], "holdout_loss": t.value} for t in study.trials]
    return float(study.best_params["lr"]), trials
