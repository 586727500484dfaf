"""Evotuning: fine-tune a UniRep model on a protein family with the original next-token objective.

Public API: :func:`evotune` (the training loop), :func:`loss`, :func:`make_batch`,
:func:`train_step`, :func:`init_opt_state`, :func:`eval_loss`, :func:`sgd_steps`,
:func:`bucket_width`, :func:`split_holdout`, and :func:`lr_search` (Optuna, optional).

The loop: a seeded shuffle, a held-out split, length-bucketed padded batches of fixed shape (one
compile per bucket width), Adam, per-epoch held-out loss with early stopping, periodic canonical
checkpoints, and a tqdm bar with the loss and tokens/s. The same seed gives the same result.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from unirep_port.jax_port.evotune_loss import DEFAULT_BLOCK, loss, make_batch, per_sequence_loss
from unirep_port.jax_port.evotune_search import lr_search
from unirep_port.jax_port.evotune_step import eval_loss, init_opt_state, sgd_steps, train_step
from unirep_port.jax_port.params import Params, load_params, to_canonical
from unirep_port.alphabet import validate_sequences

BASE_WIDTH = 32  # smallest bucket; widths are BASE_WIDTH * {1, 1.5} * 2**k, all multiples of 16

__all__ = [
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
    params: Params | dict | str | os.PathLike | None = None,
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
        params: start weights (Params, canonical dict or weights path); None loads the published
            weights of ``size``.
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
        tbptt, remat, block: see :func:`jax_port.evotune_loss.loss`.

    Returns:
        ``(tuned_params, history)``: the parameters with the best held-out loss (the last ones
        when ``holdout == 0``), and a JSON-ready dict with ``epochs`` (per epoch: ``train_loss``
        (mean over steps), ``holdout_loss``, ``tokens_per_s`` (real tokens; epoch 1 includes
        compiling each bucket width), ``seconds``, ``steps``),
        ``best_epoch``, ``stopped_early`` and the run's settings.
    """
    from tqdm.auto import tqdm

    seqs = validate_sequences(sequences)
    if epochs < 1 or batch_size < 1 or checkpoint_every < 1:
        raise ValueError("epochs, batch_size and checkpoint_every must be >= 1")
    params = load_params(size if params is None else params)
    rng = np.random.default_rng(seed)
    train, hold = split_holdout(seqs, holdout, rng)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
    kw = {"remat": remat, "tbptt": tbptt, "block": block}
    opt_state = init_opt_state(params, lr)
    history: dict = {
        "settings": {
            "size": params.hidden, "n_train": len(train), "n_holdout": len(hold),
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "holdout": holdout,
            "patience": patience, "seed": seed, "tbptt": tbptt, "remat": remat, "block": block,
        },
        "epochs": [], "best_epoch": None, "stopped_early": False,
    }  # fmt: skip
    best, best_loss, since_best = params, math.inf, 0
    steps_per_epoch = sum(1 for _ in _batches(train, batch_size, None))
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, unit="step", leave=False)
    for epoch in range(1, epochs + 1):
        t0, n_tok, losses = time.perf_counter(), 0, []
        for arrays, tokens, _rows in _batches(train, batch_size, rng):
            params, opt_state, value = train_step(params, opt_state, arrays, **kw)
            losses.append(float(value))  # blocks: makes the tokens/s honest
            n_tok += tokens
            rate = n_tok / (time.perf_counter() - t0)
            bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}", tok_s=f"{rate:.0f}")
            bar.update(1)
        seconds = time.perf_counter() - t0
        record = {
            "epoch": epoch, "train_loss": float(np.mean(losses)), "steps": len(losses),
            "tokens": n_tok, "seconds": seconds, "tokens_per_s": n_tok / seconds,
            "holdout_loss": _holdout_loss(params, hold, batch_size, kw) if hold else None,
        }  # fmt: skip
        history["epochs"].append(record)
        if ckpt is not None and epoch % checkpoint_every == 0:
            _save_checkpoint(params, ckpt / f"epoch-{epoch:03d}.safetensors")
        if not hold:
            best, history["best_epoch"] = params, epoch
            continue
        if record["holdout_loss"] < best_loss:
            best, best_loss, since_best, history["best_epoch"] = (
                params,
                record["holdout_loss"],
                0,
                epoch,
            )
            if ckpt is not None:
                _save_checkpoint(params, ckpt / "best.safetensors")
        else:
            since_best += 1
            if patience is not None and since_best >= patience:
                history["stopped_early"] = True
                break
    bar.close()
    jax.block_until_ready(best)
    return best, history
