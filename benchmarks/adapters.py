"""One interface over every implementation the benchmarks compare.

An adapter is built by name (:func:`make_adapter`), then ``prepare(size, params)`` builds the
model from canonical parameters, and ``run(seqs)`` returns ``(h_avg, h_final, c_final)`` numpy
arrays of shape (n_seqs, H). ``compile_info()`` says what was compiled (for the records).
``prepare`` raises :class:`Unavailable` with a reason when a peer is not installed or cannot run;
callers record the reason instead of crashing.

* ``tf-get_rep``: ``reference_tf.Babbler.get_rep`` per sequence (one ``session.run`` each), the
  original UniRep API and the seed paper's baseline.
* ``tf-batched``: ``Babbler.run_batch`` on length-sorted, padded batches: TF used fairly.
* ``jax-port``: ``jax_port.get_reps``.
* ``jax-auto``: the automatic port, the reference graph converted by tf2jax
  (``porting.unirep.reps``: length-sorted batches padded to a multiple of 32 tokens).
* ``jax-unirep``: the PyPI package jax-unirep 3.0.0 (``get_reps(seqs, model=...)``, model built
  from our parameters in its npz layout via ``weights.save(..., "jax-unirep")``).
* ``tape``: TAPE 0.5's PyTorch ``UniRepModel`` (1900 only), weights via ``weights.save(...,
  "tape")``, TAPE's own unirep tokenizer minus the stop token it appends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from unirep_port.alphabet import pad_batch
from unirep_port.batches import by_length

IMPLS = ("tf-get_rep", "tf-batched", "jax-port", "jax-auto", "jax-unirep", "tape")
Reps = tuple[np.ndarray, np.ndarray, np.ndarray]


class Unavailable(RuntimeError):
    """An implementation cannot run here; ``str(err)`` is the reason recorded in results."""


def _import_error(pkg: str, err: BaseException) -> Unavailable:
    return Unavailable(f"{pkg} unavailable: {type(err).__name__}: {err}")


def length_batches(seqs: list[str], batch_size: int) -> list[np.ndarray]:
    """Indices of ``seqs`` sorted by length and cut into chunks of at most ``batch_size``."""
    return by_length(seqs, batch_size)


def _unsort(chunks: list[np.ndarray], parts: list[Reps]) -> Reps:
    """Reassemble per-chunk reps into input order."""
    order = np.concatenate(chunks)
    restore = np.argsort(order)
    return tuple(np.concatenate(col)[restore] for col in zip(*parts))  # type: ignore[return-value]


class Adapter:
    """Base class: ``name``, ``prepare``, ``run``, ``compile_info``."""

    name = "base"
    sizes: tuple[int, ...] = (1900, 256, 64)
    device = "cpu"  # 'cpu' or 'gpu'; set by the runner before prepare

    def prepare(self, size: int, params: dict[str, np.ndarray]) -> None:
        """Build the model for ``size`` from canonical ``params``; raise Unavailable if not."""
        if size not in self.sizes:
            raise Unavailable(f"{self.name} has no {size} model (only {self.sizes})")
        self.size = size
        self._prepare(params)

    def _prepare(self, params: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def run(self, seqs: list[str]) -> Reps:
        raise NotImplementedError

    def compile_info(self) -> dict:
        return {}


class TFGetRep(Adapter):
    """``Babbler.get_rep`` one sequence at a time (mirrors unirep.py ``babbler1900.get_rep``)."""

    name = "tf-get_rep"

    def _prepare(self, params):
        try:
            from unirep_port.reference_tf import Babbler
        except Exception as err:  # ImportError, or TF's own RuntimeError
            raise _import_error("reference_tf (TensorFlow)", err) from None
        self.model = Babbler(params, size=self.size)

    def run(self, seqs):
        reps = [self.model.get_rep(s) for s in seqs]  # each a tuple of three (H,)
        return tuple(np.stack(col) for col in zip(*reps))  # 3 x (n, H)


class TFBatched(TFGetRep):
    """``Babbler.run_batch`` on length-sorted padded batches: one session.run per batch."""

    name = "tf-batched"
    batch_size = 256

    def run(self, seqs):
        chunks = length_batches(seqs, self.batch_size)
        parts = []
        for idx in chunks:
            tokens, lengths = pad_batch([seqs[i] for i in idx])  # (b, T) int32, (b,)
            out = self.model.run_batch(tokens, lengths)
            parts.append((out["h_avg"], out["h_final"], out["c_final"]))
        return _unsort(chunks, parts)


class JaxPort(Adapter):
    """``jax_port.get_reps`` with the given canonical parameters."""

    name = "jax-port"

    def _prepare(self, params):
        try:
            from unirep_port import jax_port
        except Exception as err:
            raise _import_error("jax_port", err) from None
        self.mod = jax_port
        # Convert once, as a user holding a model would; get_reps accepts the Params pytree.
        self.params = jax_port.from_canonical(params, self.size)

    def run(self, seqs):
        import jax

        devices = jax.devices(self.device)  # all local devices of the kind, batch-sharded
        out = self.mod.get_reps(seqs, params=self.params, size=self.size, device=devices)
        return tuple(out)

    def compile_info(self):
        return {"compiles_in_process": int(self.mod.compile_count())}


class JaxAuto(Adapter):
    """The automatic port (``porting.unirep``): the TF graph converted once, then jitted."""

    name = "jax-auto"
    batch_size = 256

    def _prepare(self, params):
        try:
            from unirep_port.porting import unirep as auto
        except Exception as err:  # tf2jax or TensorFlow missing
            raise _import_error("porting (tf2jax)", err) from None
        if self.device != "cpu":
            raise Unavailable("jax-auto runs where TensorFlow runs: the CPU here")
        self.mod = auto
        self.port = auto.auto_port(params, self.size)

    def run(self, seqs):
        return self.mod.reps(self.port, seqs, batch_size=self.batch_size)


class JaxUniRep(Adapter):
    """jax-unirep 3.0.0's ``get_reps``; it groups sequences by exact length and vmaps each group."""

    name = "jax-unirep"

    def _prepare(self, params):
        try:
            import jax_unirep
            from jax_unirep.models import load_model
        except Exception as err:
            raise _import_error("jax-unirep", err) from None
        from unirep_port import weights

        with tempfile.TemporaryDirectory() as tmp:
            weights.save(params, Path(tmp) / "model_weights.npz", "jax-unirep")
            self.model = load_model(folderpath=tmp)
        self.get_reps = jax_unirep.get_reps

    def run(self, seqs):
        return tuple(np.asarray(a) for a in self.get_reps(list(seqs), model=self.model))


class Tape(Adapter):
    """TAPE 0.5's PyTorch UniRep under ``torch.no_grad``, padded batches with an input mask."""

    name = "tape"
    sizes = (1900,)
    batch_size = 64

    def _prepare(self, params):
        try:
            import torch
            from tape import TAPETokenizer
            from tape.models.modeling_unirep import UniRepConfig, UniRepForLM
        except Exception as err:
            raise _import_error("tape-proteins", err) from None
        from unirep_port import weights

        self.torch = torch
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tape.pt"
            weights.save(params, path, "tape")
            state = torch.load(path, weights_only=True)
        lm = UniRepForLM(UniRepConfig())
        missing, unexpected = lm.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise Unavailable(f"tape state_dict mismatch: missing={missing}, extra={unexpected}")
        self.model = lm.unirep.eval()
        self.tok = TAPETokenizer(vocab="unirep")

    def run(self, seqs):
        torch = self.torch
        chunks = length_batches(seqs, self.batch_size)
        parts = []
        for idx in chunks:
            # TAPE's encode gives start 24 + residues + stop 25; reps use no stop token.
            ids = [self.tok.encode(seqs[i])[:-1] for i in idx]
            lens = np.array([len(t) for t in ids])
            tokens = np.zeros((len(ids), lens.max()), np.int64)  # (b, T), 0 = pad
            for row, t in enumerate(ids):
                tokens[row, : len(t)] = t
            mask = (tokens != 0).astype(np.float32)  # (b, T)
            with torch.no_grad():
                seq_out, pooled = self.model(torch.from_numpy(tokens), torch.from_numpy(mask))
            hs = seq_out.numpy()  # (b, T, H); padded steps carry the previous state
            hidden = hs.shape[-1]
            h_avg = (hs * mask[:, :, None]).sum(1) / lens[:, None]  # (b, H)
            pooled = pooled.numpy()  # (b, 2H): final h then final c
            parts.append((h_avg, pooled[:, :hidden], pooled[:, hidden:]))
        return _unsort(chunks, parts)


_ADAPTERS = {cls.name: cls for cls in (TFGetRep, TFBatched, JaxPort, JaxAuto, JaxUniRep, Tape)}


def make_adapter(name: str) -> Adapter:
    """A fresh adapter by implementation name (one of ``IMPLS``)."""
    try:
        return _ADAPTERS[name]()
    except KeyError:
        raise ValueError(f"unknown implementation {name!r}; choose from {IMPLS}") from None
