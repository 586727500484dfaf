"""The evotuning driver: :func:`evotune`, the training loop, and its data plumbing.

The loop: a seeded shuffle, a held-out split (:func:`split_holdout`), length-bucketed padded
batches of fixed shape (:func:`bucket_width`; one compile per bucket width), Adam, per-epoch
held-out loss with early stopping, periodic canonical checkpoints, and a tqdm bar with the loss and
tokens/s. The same seed gives the same result.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from unirep_port.alphabet import validate_sequences
from unirep_port.jax_port.cell import DEFAULT_CELL
from unirep_port.jax_port.evotuning.objective import DEFAULT_BLOCK, make_batch
from unirep_port.jax_port.evotuning.step import eval_loss, init_opt_state, train_step
from unirep_port.jax_port.model import Model
from unirep_port.jax_port.params import Params, load_params, to_canonical

BASE_WIDTH = 32  # smallest bucket; widths are BASE_WIDTH * {1, 1.5} * 2**k, all multiples of 16

__all__ = ["bucket_width", "evotune", "split_holdout"]


def bucket_width(n_positions: int) -> int:
    """The padded time width for a sequence with ``n_positions`` = len(seq) + 1 loss positions.

    Widths are 32, 48, 64, 96, 128, 192, ... (each at most 1.5x the previous), so a data set of
    lengths up to L compiles at most ~2*log2(L/32) + 1 shapes and wastes < 50% on padding.
    """
    w = BASE_WIDTH
    while w < n_positions:
        w = w * 3 // 2 if (w & (w - 1)) == 0 else w * 4 // 3  # 32 -> 48 -> 64 -> 96 -> 128 ...
    return w


def split_holdout(
    seqs: Sequence[str], holdout: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Shuffle ``seqs`` with ``rng`` and cut off ``round(holdout * N)`` (at least 1 if > 0)."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout}")
    order = rng.permutation(len(seqs))
    n_hold = 0 if holdout == 0 else max(1, round(holdout * len(seqs)))
    if n_hold >= len(seqs):
        raise ValueError(
            f"holdout={holdout} leaves no training sequences out of {len(seqs)}; "
            "give more sequences or holdout=0"
        )
    hold = [seqs[i] for i in order[:n_hold]]
    train = [seqs[i] for i in order[n_hold:]]
    return train, hold


def _batches(seqs: Sequence[str], batch_size: int, rng: np.random.Generator | None):
    """Bucketed batches: sequences grouped by :func:`bucket_width`, each batch (batch_size, W).

    With ``rng`` the order inside buckets and of the batches is shuffled; without it the order
    is deterministic (for evaluation). Yields ``(arrays, n_real_tokens, n_rows)``.
    """
    buckets: dict[int, list[str]] = {}
    order = rng.permutation(len(seqs)) if rng is not None else np.arange(len(seqs))
    for i in order:
        buckets.setdefault(bucket_width(len(seqs[i]) + 1), []).append(seqs[i])
    plan = [
        (w, group[k : k + batch_size])
        for w, group in sorted(buckets.items())
        for k in range(0, len(group), batch_size)
    ]
    if rng is not None:
        plan = [plan[i] for i in rng.permutation(len(plan))]
    for w, chunk in plan:
        arrays = make_batch(chunk, width=w, rows=batch_size)
        yield arrays, int(arrays[2].sum()), len(chunk)


def _save_checkpoint(params: Params, path: Path) -> None:
    from unirep_port import (
        weights,
    )  # lazy: the weights package writes the canonical safetensors file

    weights.save(to_canonical(params), path, "canonical", force=True)


def _holdout_loss(params, seqs, batch_size, kw) -> float:
    """Mean over held-out sequences of each one's masked mean cross-entropy."""
    total, n = 0.0, 0
    for arrays, _tokens, rows in _batches(seqs, batch_size, None):
        total += float(eval_loss(params, arrays, **kw)) * rows
        n += rows
    return total / n


def evotune(
    sequences: Sequence[str],
    params: Model | Params | dict | str | os.PathLike | None = None,
    size: int = 1900,
    *,
    epochs: int = 20,
    batch_size: int = 16,
    lr: float = 1e-5,
    holdout: float = 0.1,
    patience: int | None = 3,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    progress: bool = True,
    tbptt: int | None = None,
    remat: bool = True,
    block: int = DEFAULT_BLOCK,
) -> tuple[Params, dict]:
    """Fine-tune ``params`` on ``sequences`` with Adam on the original next-token loss.

    Args:
        sequences: amino-acid strings (validated; errors name the index).
        params: start weights (Params, canonical dict or weights path), or a prepared model
            (``jax_port.prepare(..., cell=...)``: its weights, trained with its cell functions);
            None loads the published weights of ``size``.
        size: 1900, 256 or 64 (used only when ``params`` is None).
        epochs: maximum passes over the training split.
        batch_size: sequences per step (every batch has this many rows; short ones are padded).
        lr: Adam learning rate.
        holdout: fraction held out for early stopping (0 disables it).
        patience: stop after this many epochs without a held-out improvement (None: never).
        seed: seeds the split and every shuffle; the same seed gives the same result.
        checkpoint_dir: if set, write ``epoch-NNN.safetensors`` (canonical format) there every
            ``checkpoint_every`` epochs, and ``best.safetensors`` at each held-out improvement.
        progress: show a tqdm bar (loss, tokens/s).
        tbptt, remat, block: see :func:`jax_port.evotuning.objective.loss`.

    Returns:
        ``(tuned_params, history)``: the parameters with the best held-out loss (the last ones
        when ``holdout == 0``), and a JSON-ready dict with ``epochs`` (per epoch: ``train_loss``
        (mean over steps), ``holdout_loss``, ``tokens_per_s`` (real tokens; epoch 1 includes
        compiling each bucket width), ``seconds``, ``steps``),
        ``best_epoch``, ``stopped_early`` and the run's settings.
    """
    seqs = validate_sequences(sequences)
    if epochs < 1 or batch_size < 1 or checkpoint_every < 1:
        raise ValueError("epochs, batch_size and checkpoint_every must be >= 1")
    cell = DEFAULT_CELL
    if isinstance(params, Model):
        params, cell = params.params, params.cell
    params = load_params(size if params is None else params)
    rng = np.random.default_rng(seed)
    train, hold = split_holdout(seqs, holdout, rng)
    settings = {
        "size": params.hidden, "n_train": len(train), "n_holdout": len(hold), "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "holdout": holdout, "patience": patience,
        "seed": seed, "tbptt": tbptt, "remat": remat, "block": block,
    }  # fmt: skip
    kw = {"remat": remat, "tbptt": tbptt, "block": block, "cell": cell}
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    run = _Run(epochs, batch_size, patience, rng, kw, ckpt, checkpoint_every, progress)
    return _train(params, init_opt_state(params, lr), train, hold, run, settings)


@dataclass(frozen=True)
class _Run:
    """What :func:`evotune`'s loop needs besides the weights and the data (its arguments)."""

    epochs: int
    batch_size: int
    patience: int | None
    rng: np.random.Generator  # the split's generator, shuffling every epoch in turn
    kw: dict  # train_step's and eval_loss's keywords: remat, tbptt, block, cell
    ckpt: Path | None
    checkpoint_every: int
    progress: bool


@dataclass
class _Best:
    """The weights :func:`evotune` returns: those with the lowest held-out loss so far (the
    latest, without a held-out split), and how many epochs have passed without a new lowest."""

    params: Params
    epoch: int | None = None
    loss: float = math.inf
    since: int = 0

    def update(self, params: Params, epoch: int, loss: float | None, run: _Run) -> bool:
        """Take ``epoch``'s weights if their held-out ``loss`` is the lowest yet (then
        ``best.safetensors`` too) or there is no held-out split; True to stop early."""
        if loss is None:
            self.params, self.epoch = params, epoch
            return False
        if loss < self.loss:
            self.params, self.loss, self.since, self.epoch = params, loss, 0, epoch
            if run.ckpt is not None:
                _save_checkpoint(params, run.ckpt / "best.safetensors")
            return False
        self.since += 1
        return run.patience is not None and self.since >= run.patience


def _train(params, opt_state, train, hold, run: _Run, settings: dict) -> tuple[Params, dict]:
    """The epochs of :func:`evotune`: train, judge on ``hold``, checkpoint, stop early."""
    from tqdm.auto import tqdm

    if run.ckpt is not None:
        run.ckpt.mkdir(parents=True, exist_ok=True)
    history: dict = {"settings": settings, "epochs": [], "best_epoch": None, "stopped_early": False}
    best = _Best(params)
    steps_per_epoch = sum(1 for _ in _batches(train, run.batch_size, None))
    total = run.epochs * steps_per_epoch
    bar = tqdm(total=total, disable=not run.progress, unit="step", leave=False)
    for epoch in range(1, run.epochs + 1):
        params, opt_state, record = _train_epoch(params, opt_state, train, run, bar, epoch)
        record["holdout_loss"] = (
            _holdout_loss(params, hold, run.batch_size, run.kw) if hold else None
        )
        history["epochs"].append(record)
        if run.ckpt is not None and epoch % run.checkpoint_every == 0:
            _save_checkpoint(params, run.ckpt / f"epoch-{epoch:03d}.safetensors")
        if best.update(params, epoch, record["holdout_loss"], run):
            history["stopped_early"] = True
            break
    bar.close()
    history["best_epoch"] = best.epoch
    jax.block_until_ready(best.params)
    return best.params, history


def _train_epoch(params, opt_state, train, run: _Run, bar, epoch: int):
    """One shuffled pass over ``train``: the new weights and optimiser state, and the epoch's
    record (its held-out loss is added by the caller)."""
    t0, n_tok, losses = time.perf_counter(), 0, []
    for arrays, tokens, _rows in _batches(train, run.batch_size, run.rng):
        params, opt_state, value = train_step(params, opt_state, arrays, **run.kw)
        losses.append(float(value))  # blocks: makes the tokens/s honest
        n_tok += tokens
        rate = n_tok / (time.perf_counter() - t0)
        bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}", tok_s=f"{rate:.0f}")
        bar.update(1)
    seconds = time.perf_counter() - t0
    record = {
        "epoch": epoch, "train_loss": float(np.mean(losses)), "steps": len(losses),
        "tokens": n_tok, "seconds": seconds, "tokens_per_s": n_tok / seconds,
    }  # fmt: skip
    return params, opt_state, record
