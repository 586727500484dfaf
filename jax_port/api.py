"""User-facing reps: get_reps, fusion_reps, iter_reps (streaming), the precision report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from unirep_port import alphabet
from unirep_port.batches import batches
from unirep_port.jax_port import engine, model
from unirep_port.progress import fail


def encode(
    seqs: str | Iterable[str], ids: Iterable | None = None, tokenize: Callable | None = None
) -> list[np.ndarray]:
    """Validate (errors name the sequence index or id and the letters) and tokenise sequences.

    Each result is ``tokenize(seq)``, by default ``alphabet.tokenize``: start token 24 then
    residues, no stop token, as ``aa_seq_to_int(seq)[:-1]`` in unirep.py L404 (the public
    functions pass their model's ``cell.tokenize``).
    """
    tok = alphabet.tokenize if tokenize is None else tokenize
    return [tok(s) for s in alphabet.validate_sequences(seqs, ids)]


def get_reps(
    seqs: str | Iterable[str],
    params=None,
    size: int = 1900,
    *,
    batch_size: int = 256,
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
        params: a prepared model (``jax_port.prepare(...)``: its weights and cell functions),
            Params, canonical dict, weights file path, or None for the published weights of
            ``size`` (loaded and prepared once per process).
        size: 1900, 256 or 64 (used when ``params`` is None).
        batch_size: maximum sequences advanced together; chunk_len: time steps per compiled chunk.
        device: a jax device or list of devices (default: all local devices, batch-sharded).
        precision: "highest" (default, f32 matmuls) or "fast": bf16 inputs with f32
            accumulation for the 4H-wide matmuls where a probe measures that faster on this
            machine (else a logged notice and "highest"); see :mod:`jax_port.precision` and the
            certificate ``parity.fastmode``; :func:`precision_error_report` measures it on your
            data.
        progress: show a tqdm bar of tokens.
        chunk_seqs: sequences read from ``seqs`` per engine run (memory stays flat).
    """
    records = ((i, s) for i, s in enumerate([seqs] if isinstance(seqs, str) else seqs))
    parts = [
        reps
        for _, _, reps in _iter_blocks(
            records,
            model.as_model(params, size),
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
    batch_size: int = 256,
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
        model.as_model(params, size),
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
    records, m, batch_size, chunk_len, device, precision, progress, chunk_seqs, on_tokens
):
    bar = None
    if progress:
        from unirep_port.progress import progress as _progress

        bar = _progress("reps", unit="tok")
        on_tokens = bar.update
    try:
        for block in batches(records, chunk_seqs):
            ids = [rid for rid, _ in block]
            toks = encode([s for _, s in block], ids, m.cell.tokenize)
            lengths = np.array([len(t) - 1 for t in toks], np.int64)  # residues
            reps = engine.run_reps(
                toks,
                m,
                batch_size=batch_size,
                chunk_len=chunk_len,
                precision=precision,
                device=device,
                on_tokens=on_tokens,
            )
            yield ids, lengths, reps
    except Exception:
        if bar is not None:
            fail(bar)  # a run that stopped on an error does not log "done"
        raise
    finally:
        if bar is not None:
            bar.close()


def precision_error_report(seqs, params=None, size: int = 1900, **kw) -> dict[str, float]:
    """Max abs difference of each rep between ``precision="fast"`` and ``"highest"``.

    "fast" rounds the 4H-wide matmuls' inputs to bf16 where a probe on this machine measures
    bf16 faster (see :mod:`jax_port.precision`); elsewhere it runs "highest" and the
    difference is 0.
    """
    seqs = list([seqs] if isinstance(seqs, str) else seqs)
    params = model.as_model(params, size)
    hi = get_reps(seqs, params, size, precision="highest", **kw)
    lo = get_reps(seqs, params, size, precision="fast", **kw)
    names = ("h_avg", "h_final", "c_final")
    return {n: float(np.max(np.abs(a - b))) for n, a, b in zip(names, hi, lo)}
