"""The babbler: one TF1 graph per model with the original API and a batched verification path.

``get_rep``, ``get_babble``, ``get_rep_ops`` and ``get_babbler_ops`` keep the original behaviour
of churchlab/UniRep ``babbler1900`` (unirep.py L395-478) including its cost: every ``get_rep`` or
``get_babble`` call opens a new ``tf.compat.v1.Session`` and initialises all variables.
``run_batch``, ``reps`` and ``loss_batch`` run many sequences in one ``session.run`` on a
persistent session.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from unirep_port.alphabet import INT_TO_AA, STOP, normalize, pad_batch, tokenize, validate_sequences
from unirep_port.batches import by_length
from unirep_port.reference_tf.graph import build_graph, resolve_params
from unirep_port.sizes import get_size

v1 = tf.compat.v1


class Babbler:
    """A UniRep model (1900, 256 or 64) as a TF1 graph.

    Args:
        params_or_path: canonical dict {TF variable name: float32 array}, or a path read with
            ``weights.load`` (canonical ``.safetensors`` or the original tf1 ``.npy`` folder).
        size: 1900, 256 or 64; detected from the parameter shapes when None.
        batch_size: rows of the zero initial state that ``get_rep``/``get_babble`` feed, as the
            original fed its ``batch_size`` (default 256) rows to a batch of one sequence and let
            broadcasting run every step on that many identical rows; row 0 is returned. Any
            even value gives the same numbers as the batched path (oneDNN's CPU matmul rounds
            an odd last row differently, so ``run_batch`` also pads odd batches by one row);
            odd values, 1 included, can differ from it by float32 rounding (~1e-5 in c).
    """

    def __init__(self, params_or_path, size: int | None = None, batch_size: int = 256):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._batch_size = int(batch_size)
        params, self.size = resolve_params(params_or_path, size)
        self.hidden = get_size(self.size).hidden
        self.n_layers = get_size(self.size).n_layers
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._g = build_graph(params, self.size)
        # Not finalised: like the original, users add ops (a top model, an optimiser, an
        # initializer) on top of get_rep_ops()/get_babbler_ops() in this graph.
        self._sess: v1.Session | None = None
        self._zero_state = self._zeros(self._batch_size)

    # ----- helpers -----------------------------------------------------------------------
    def _zeros(self, batch: int):
        """Numpy zero state shaped like the ``initial_state`` placeholders (batch rows)."""
        z = np.zeros((batch, self.hidden), np.float32)
        if self.n_layers == 1:
            return (z, z)
        return (tuple(z for _ in range(self.n_layers)),) * 2

    def _session(self) -> v1.Session:
        """The persistent session of the batched path (created and initialised once)."""
        if self._sess is None:
            self._sess = v1.Session(graph=self._graph)
            self._sess.run(self._g.init_op)
        return self._sess

    def close(self) -> None:
        """Close the persistent session (the graph stays usable; a new session opens lazily)."""
        if self._sess is not None:
            self._sess.close()
            self._sess = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----- the original API --------------------------------------------------------------
    def format_seq(self, seq: str, stop: bool = False) -> np.ndarray:
        """Integer tokens of ``seq`` (start token first; stop token last if ``stop``), L482-494."""
        return tokenize(normalize(seq, 0), stop=stop)

    def get_rep(self, seq: str):
        """``(avg_hidden, final_hidden, final_cell)``, each (H,), of one sequence.

        Mirrors unirep.py L395-422 (and L662-691 for 256/64, which return the last layer's
        state): a new session per call, variables initialised, one sequence fed with the
        (batch_size, H) zero initial state, computed on batch_size identical broadcast rows, of
        which row 0 is returned, exactly as the original did.
        """
        tokens = tokenize(normalize(seq, 0))  # (T,) start token + residues
        g = self._g
        with v1.Session(graph=self._graph) as sess:
            sess.run(g.init_op)
            final_state, hs = sess.run(
                [g.final_state, g.output],
                feed_dict={
                    g.batch_size: 1,
                    g.x: tokens[None, :],
                    g.initial_state: self._zero_state,
                },
            )
        final_cell, final_hidden = final_state
        if self.n_layers > 1:
            final_cell, final_hidden = final_cell[-1], final_hidden[-1]
        avg_hidden = np.mean(hs[0], axis=0)  # (T, H) -> (H,)
        return avg_hidden, final_hidden[0], final_cell[0]

    def get_babble(self, seed: str, length: int = 250, temp: float = 1, rng_seed=None) -> str:
        """Continue ``seed`` by sampling at temperature ``temp`` up to ``length`` letters.

        Mirrors unirep.py L424-462: one new session, the seed run once, then one token at a time
        with the state carried over. ``rng_seed`` (int) makes the draws reproducible (the
        original's sampler took no seed). Two deliberate changes: sampling the stop token ends
        the babble (the original appended the word "stop" and went on), and token 23 decodes as
        'X' (the original decoded it as 'J').
        """
        seed = normalize(seed, 0)
        if rng_seed is None:
            rng_seed = int(np.random.SeedSequence().entropy % (2**62))
        g = self._g
        step = 0

        def draw(sess, x, state):
            nonlocal step
            feed = {g.x: x, g.initial_state: state, g.batch_size: 1, g.temp: float(temp)}
            feed[g.sample_seed] = np.array([int(rng_seed), step], np.int64)
            step += 1
            return sess.run([g.sample, g.final_state], feed_dict=feed)

        with v1.Session(graph=self._graph) as sess:
            sess.run(g.init_op)
            samples, state = draw(sess, tokenize(seed)[None, :], self._zero_state)
            pred = int(samples[0, -1]) + 1  # logit k predicts token k + 1
            if pred not in INT_TO_AA or pred == STOP:
                return seed
            seed = seed + INT_TO_AA[pred]
            for _ in range(length - len(seed)):
                samples, state = draw(sess, np.array([[pred]], np.int32), state)
                pred = int(samples[0, 0]) + 1
                if pred not in INT_TO_AA or pred == STOP:
                    break
                seed = seed + INT_TO_AA[pred]
        return seed

    def get_rep_ops(self):
        """``(final_hidden, x, batch_size, seq_len, initial_state)`` tensors (L464-469)."""
        g = self._g
        return g.top_final_hidden, g.x, g.batch_size, g.seq_len, g.initial_state

    def get_babbler_ops(self):
        """``(logits, loss, x, y, batch_size, initial_state)`` tensors (L471-478)."""
        g = self._g
        return g.logits, g.loss, g.x, g.y, g.batch_size, g.initial_state

    @property
    def graph(self) -> tf.Graph:
        return self._graph

    def variable_values(self) -> dict[str, np.ndarray]:
        """The graph's trainable variables as {canonical name: array} (cf. dump_weights L480)."""
        return self._session().run(self._g.variables)

    # ----- the batched verification path ---------------------------------------------------
    def run_batch(self, tokens, lengths) -> dict[str, np.ndarray]:
        """Run a padded batch in one ``session.run``.

        Args:
            tokens: (B, T) int32, start token then residues, padded with 0 past ``lengths[b]``.
            lengths: (B,) int, tokens per row counting the start token, 1 <= lengths[b] <= T.

        Returns:
            dict of float32 arrays: ``hs`` (B, T, H) output h, zero past each length;
            ``h_final``/``c_final`` (B, H), the last layer's state at the last real position;
            ``h_avg`` (B, H), mean of ``hs`` over the first lengths[b] positions;
            ``logits`` (B, T, 25).
        """
        tokens = np.asarray(tokens)
        lengths = np.asarray(lengths)
        if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(
                f"tokens must be a 2-D integer array, got {tokens.dtype}{tokens.shape}"
            )
        if lengths.shape != (tokens.shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(
                f"lengths must be an integer array of shape ({tokens.shape[0]},), "
                f"got {lengths.dtype}{lengths.shape}"
            )
        bad = np.flatnonzero((lengths < 1) | (lengths > tokens.shape[1]))
        if bad.size:
            raise ValueError(f"row(s) {bad.tolist()} have lengths outside [1, {tokens.shape[1]}]")
        if tokens.min(initial=0) < 0 or tokens.max(initial=0) > 25:
            raise ValueError("tokens must lie in [0, 25]")
        n = tokens.shape[0]
        if n % 2:  # CPU matmul kernels round an odd last row differently: add a copy, drop it
            tokens = np.concatenate([tokens, tokens[-1:]])
            lengths = np.concatenate([lengths, lengths[-1:]])
        g = self._g
        hs, h_final, c_final, logits = self._session().run(
            [g.b_output, g.b_h_final, g.b_c_final, g.b_logits],
            feed_dict={
                g.x: tokens.astype(np.int32),
                g.seq_len: lengths.astype(np.int32),
                g.batch_size: tokens.shape[0],
            },
        )
        hs, h_final, c_final, logits = hs[:n], h_final[:n], c_final[:n], logits[:n]
        # The same reduction as get_rep (np.mean over the real positions), row by row.
        h_avg = np.stack([np.mean(hs[b, : lengths[b]], axis=0) for b in range(n)])  # (B, H)
        return {"hs": hs, "h_final": h_final, "c_final": c_final, "h_avg": h_avg, "logits": logits}

    def reps(self, seqs, batch_size: int = 32):
        """``(h_avg, h_final, c_final)``, each (N, H), for many sequences, in input order.

        ``seqs`` is one string or an iterable of strings, validated with errors naming the
        sequence index. Sequences are batched by length to limit padding.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        seqs = validate_sequences(seqs)
        out = np.zeros((3, len(seqs), self.hidden), np.float32)
        for idx in by_length(seqs, batch_size):
            tokens, lengths = pad_batch([seqs[i] for i in idx])
            r = self.run_batch(tokens, lengths)
            out[0, idx], out[1, idx], out[2, idx] = r["h_avg"], r["h_final"], r["c_final"]
        return out[0], out[1], out[2]

    def loss_batch(self, x, y):
        """The original masked loss and the logits for a batch (the ops of get_babbler_ops).

        Args:
            x: (B, T) int32 inputs (start token + residues, 0-padded).
            y: (B, T) int32 targets (next tokens ending with stop 25, 0-padded).

        Returns:
            ``(loss, logits)``: python float and (B, T, 25) float32.
        """
        x = np.asarray(x, np.int32)
        y = np.asarray(y, np.int32)
        if x.ndim != 2 or x.shape != y.shape:
            raise ValueError(f"x and y must be 2-D of equal shape, got {x.shape} and {y.shape}")
        g = self._g
        loss, logits = self._session().run(
            [g.loss, g.logits],
            feed_dict={
                g.x: x,
                g.y: y,
                g.batch_size: x.shape[0],
                g.initial_state: self._zeros(len(x)),
            },
        )
        return float(loss), logits


class babbler1900(Babbler):  # the original class name
    """The 1900-unit babbler as in the original: ``babbler1900(model_path)`` (unirep.py L312).

    ``model_path`` is a canonical dict or a weights path; ``batch_size`` is the number of zero
    state rows that ``get_rep`` feeds, as in the original (see :class:`Babbler`).
    """

    _SIZE = 1900

    def __init__(self, model_path="./pbab_weights", batch_size: int = 256):
        super().__init__(model_path, size=self._SIZE, batch_size=batch_size)


class babbler256(babbler1900):
    """The 4 x 256 stacked babbler (unirep.py L575)."""

    _SIZE = 256


class babbler64(babbler1900):
    """The 4 x 64 stacked babbler (unirep.py L693)."""

    _SIZE = 64


def reps(params, seqs, size: int | None = None, batch_size: int = 32):
    """``(h_avg, h_final, c_final)`` arrays (N, H) for ``seqs`` with a throw-away Babbler.

    Args:
        params: canonical dict or weights path. seqs: one string or an iterable of strings.
        size: 1900, 256 or 64 (detected when None). batch_size: sequences per session.run.
    """
    seqs = validate_sequences(seqs)  # fail before the (slow) graph build
    with Babbler(params, size) as model:
        return model.reps(seqs, batch_size=batch_size)
