"""Per-residue hidden states computed for the store (``unirep-port reps --hidden-states``).

The store format itself (:mod:`unirep_port.hidden_store`) is bottom-layer and needs no JAX; this
module computes what goes into it with the port.
"""

from __future__ import annotations

from unirep_port.hidden_store import HiddenStoreWriter

SLOTS = 16  # batch slots of every get_hidden_states batch (see compute_into)


def compute_into(writer: HiddenStoreWriter, records, params, size: int, block: int = 64) -> None:
    """Append ``jax_port.get_hidden_states`` of ``(id, seq)`` records, ``block`` at a time.

    The bits of a position's state depend on how many batch slots its batch had (XLA's CPU
    matmul kernels differ by batch size), so every batch here is a full one of
    ``SLOTS`` (get_hidden_states' default ``batch_size``): a block is padded to a multiple of
    ``SLOTS`` by repeating its last record, whose extra copies are dropped. A record's states
    are therefore the same whatever the shard size or its neighbours, and bitwise those that
    ``get_hidden_states`` gives it in a full batch (any call on a multiple of 16 sequences).
    """
    from unirep_port import jax_port

    records = list(records)
    for i in range(0, len(records), block):
        part = records[i : i + block]
        seqs = [s for _, s in part]
        seqs += [seqs[-1]] * (-len(seqs) % SLOTS)
        states = jax_port.get_hidden_states(seqs, params=params, size=size, batch_size=SLOTS)
        for (rid, _), a in zip(part, states):
            writer.append(rid, a)
