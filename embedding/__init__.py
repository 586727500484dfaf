"""Embedding at scale: the sharded driver, the Ray engine and the per-residue hidden-state store.

These sit above the compute rooms (they call ``unirep_port.jax_port``) and below the CLI
(``unirep-port reps --engine ray``, ``--format parquet``, ``--hidden-states``); the shard and
manifest readers they write for (``unirep_port.shards``) are bottom-layer and need no JAX.
"""
