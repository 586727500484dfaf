"""User-facing functions: reps, fusion reps, per-position states and logits, babbling, streaming."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jax_port import cell, engine, model
from jax_port.params import Params, load_params
from unirep_port import alphabet
from unirep_port.alphabet import INT_TO_AA, START, STOP

_STEP_JITS: dict[str, Callable] = {}


def _params(params, size: int) -> Params:
    return load_params(size if params is None else params)


def encode(seqs: str | Iterable[str], ids: Iterable | None = None) -> list[np.ndarray]:
    """Validate (errors name the sequence index or id and the letters) and tokenise sequences.

    Each result is ``alphabet.tokenize(seq)``: start token 24 then residues, no stop token,
    as ``aa_seq_to_int(seq)[:-1]`` in unirep.py L404.
    """
    return [alphabet.tokenize(s) for s in alphabet.validate_sequences(seqs, ids)]


def get_reps(
    seqs: str | Iterable[str],
    params=None,
    size: int = 1900,
    *,
    batch_size: int = 64,
    chunk_len: int | None = None,
    device=None,
    precision: str = "highest",
    progress: bool = False,
    chunk_seqs: int = 4096,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UniRep reps ``(h_avg, h_final, c_final)`` of sequences, each float32 (n, H), input order.

    Mirrors unirep.py L395-420 (get_rep) for any number of sequences of any lengths.

    Args:
        seqs: one string or any iterable of strings (generators included).
        params: Params, canonical dict, weights file path, or None for the published weights of
            ``size`` (loaded once per process).
        size: 1900, 256 or 64 (used when ``params`` is None).
        batch_size: maximum sequences advanced together; chunk_len: time steps per compiled chunk.
        device: a jax device or list of devices (default: all local devices, batch-sharded).
        precision: "highest" (default, f32 matmuls) or "fast" (backend default precision:
            bf16/tf32 on GPU; measure its error with :func:`precision_error_report`).
        progress: show a tqdm bar of tokens.
        chunk_seqs: sequences read from ``seqs`` per engine run (memory stays flat).
    """
    records = ((i, s) for i, s in enumerate([seqs] if isinstance(seqs, str) else seqs))
    parts = [
        reps
        for _, _, reps in _iter_blocks(
            records,
            _params(params, size),
            batch_size,
            chunk_len,
            device,
            precision,
            progress,
            chunk_seqs,
            None,
        )
    ]
    if not parts:
        raise ValueError("no sequences given (the input is empty)")
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def fusion_reps(seqs: str | Iterable[str], params=None, size: int = 1900, **kw) -> np.ndarray:
    """The UniRep "fusion" rep ``[h_avg, h_final, c_final]``, float32 (n, 3H); see get_reps."""
    return np.concatenate(get_reps(seqs, params, size, **kw), axis=1)


def iter_reps(
    records: Iterable[tuple[str, str]],
    params=None,
    size: int = 1900,
    *,
    batch_size: int = 64,
    chunk_len: int | None = None,
    device=None,
    precision: str = "highest",
    chunk_seqs: int = 1024,
    on_tokens: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Stream reps over ``(id, seq)`` records in chunks, in input order (the CLI's engine).

    Records are consumed ``chunk_seqs`` at a time (each chunk is validated whole before any
    compute, errors naming the record id), so memory is flat for inputs of any size.

    Yields:
        ``(ids, lengths, h_avg, h_final, c_final)`` per chunk: ids (list of str), lengths
        (n,) int64 residue counts, reps float32 (n, H).
    ``on_tokens(n)`` is called after every compiled chunk with the tokens it processed
    (start tokens included), for a progress bar or a tokens/s readout.
    """
    for ids, lengths, reps in _iter_blocks(
        records,
        _params(params, size),
        batch_size,
        chunk_len,
        device,
        precision,
        False,
        chunk_seqs,
        on_tokens,
    ):
        yield (ids, lengths, *reps)


def _iter_blocks(
    records, params, batch_size, chunk_len, device, precision, progress, chunk_seqs, on_tokens
):
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="tok", unit_scale=True)
        on_tokens = bar.update
    it = iter(records)
    try:
        while True:
            block = [r for _, r in zip(range(chunk_seqs), it)]
            if not block:
                return
            ids = [rid for rid, _ in block]
            toks = encode([s for _, s in block], ids)
            lengths = np.array([len(t) - 1 for t in toks], np.int64)  # residues
            reps = engine.run_reps(
                toks,
                params,
                batch_size=batch_size,
                chunk_len=chunk_len,
                precision=precision,
                device=device,
                on_tokens=on_tokens,
            )
            yield ids, lengths, reps
    finally:
        if bar is not None:
            bar.close()


def _padded(seqs) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
    toks = encode(seqs)
    lengths = np.array([len(t) for t in toks], np.int32)
    width = -(-int(lengths.max()) // 128) * 128  # bucket T to a multiple of 128: few compiles
    arr = np.zeros((len(toks), width), np.int32)
    for i, t in enumerate(toks):
        arr[i, : len(t)] = t
    return toks, arr, lengths, width


def _forward_jit() -> Callable:
    if "forward" not in _STEP_JITS:

        def fwd(params, tokens, lengths):
            engine._TRACES["n"] += 1
            return model.forward(params, tokens, lengths)

        _STEP_JITS["forward"] = jax.jit(fwd)
    return _STEP_JITS["forward"]


def _per_position(seqs, params, size, batch_size, which):
    p = _params(params, size)
    toks, arr, lengths, _ = _padded(seqs)
    out: list[np.ndarray | None] = [None] * len(toks)
    order = np.argsort(-lengths, kind="stable")
    with jax.default_matmul_precision("highest"):
        for start in range(0, len(toks), batch_size):
            idx = order[start : start + batch_size]
            width = -(-int(lengths[idx].max()) // 128) * 128
            bsz = engine.pick_batch(len(idx), batch_size, 1)
            tb = np.zeros((bsz, width), np.int32)
            lb = np.ones(bsz, np.int32)
            tb[: len(idx)], lb[: len(idx)] = arr[idx, :width], lengths[idx]
            res = np.asarray(_forward_jit()(p, tb, lb)[which])
            for k, j in enumerate(idx):
                out[j] = res[k, : lengths[j]]
    return out


def get_hidden_states(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """Per-position output h of each sequence, a list of float32 (L+1, H) arrays.

    Position 0 is the start token's output (``self._output`` of unirep.py L356-362).
    """
    return _per_position(seqs, params, size, batch_size, 0)


def get_logits(seqs, params=None, size: int = 1900, *, batch_size: int = 16):
    """Per-position logits, a list of float32 (L+1, 25); logit k predicts token k+1 (L372-376)."""
    return _per_position(seqs, params, size, batch_size, 1)


def _step_jit() -> Callable:
    if "step" not in _STEP_JITS:

        def step(prep, tok, carries):
            engine._TRACES["n"] += 1
            carries, h, _ = model.stack_step(prep, tok, carries)  # h: (1, H)
            return carries, cell.logits(h, prep.dense_w, prep.dense_b)  # (1, 25)

        _STEP_JITS["step"] = jax.jit(step)
    return _STEP_JITS["step"]


def babble(
    seed: str,
    length: int = 250,
    temperature: float = 1.0,
    key=None,
    params=None,
    size: int = 1900,
) -> str:
    """Sample a continuation of ``seed``; mirrors unirep.py L424-460 (get_babble).

    Samples token ``k+1`` with probability softmax(logits / temperature)[k] after reading the
    seed, appends it, and repeats until the string has ``length`` letters (at least one is
    added, as in the original) or the stop token is drawn (then it is not appended). The start
    token (24) is excluded from sampling, since it has no letter.
    ``key`` is a ``jax.random`` key (default ``PRNGKey(0)``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = _params(params, size)
    seed_n = alphabet.normalize(seed, "seed")
    key = jax.random.PRNGKey(0) if key is None else key
    with jax.default_matmul_precision("highest"):
        prep = engine._jit("prepare")(p)
        step = _step_jit()
        carries = model.zero_carries(p.n_layers, 1, p.hidden)
        for t in alphabet.tokenize(seed_n):
            carries, lg = step(prep, jnp.asarray([t], jnp.int32), carries)
        out = seed_n
        while True:
            key, sub = jax.random.split(key)
            scaled = (lg[0] / temperature).at[START - 1].set(-jnp.inf)  # (25,): never "start"
            tok = int(jax.random.categorical(sub, scaled)) + 1
            if tok == STOP:
                break
            out += INT_TO_AA[tok]
            if len(out) >= length:
                break
            carries, lg = step(prep, jnp.asarray([tok], jnp.int32), carries)
    return out


def precision_error_report(seqs, params=None, size: int = 1900, **kw) -> dict[str, float]:
    """Max abs difference of each rep between ``precision="fast"`` and ``"highest"``.

    The fast mode's error must be measured on the target hardware before relying on it (on CPU
    both modes are f32 and the difference is ~0; on GPU "fast" uses bf16/tf32 matmuls).
    """
    seqs = list([seqs] if isinstance(seqs, str) else seqs)
    hi = get_reps(seqs, params, size, precision="highest", **kw)
    lo = get_reps(seqs, params, size, precision="fast", **kw)
    names = ("h_avg", "h_final", "c_final")
    return {n: float(np.max(np.abs(a - b))) for n, a, b in zip(names, hi, lo)}


def clear_step_caches() -> None:
    """Drop the jitted forward/step functions of this module."""
    _STEP_JITS.clear()
