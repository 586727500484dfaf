"""Training side of the TF1 reference: the babbler loss, its gradients, and plain SGD steps.

Builds the babbler graph of :mod:`reference_tf.graph` (whose ``loss`` mirrors unirep.py
L337-342 and L382-388: ``reduce_mean`` of ``sequence_loss(..., average_across_batch=False)``) into
its own ``tf.Graph`` and adds ``tf.compat.v1.gradients`` of that loss with respect to every
trainable variable, plus a ``tf.compat.v1.train.GradientDescentOptimizer`` step (the original
evotuning used the same graph's loss with an optimiser). Never imports jax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf

from unirep_port.reference_tf.graph import build_graph, resolve_params

v1 = tf.compat.v1


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.int32)
    y = np.asarray(y, np.int32)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be 2-D of equal shape, got {x.shape} and {y.shape}")
    if x.min(initial=0) < 0 or x.max(initial=0) > 25 or y.min(initial=0) < 0 or y.max() > 25:
        raise ValueError("x and y must hold tokens in [0, 25]")
    empty = np.flatnonzero((y != 0).sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"row(s) {empty.tolist()} of y have no targets (all padding)")
    return x, y


class Trainer:
    """A babbler graph with gradient and SGD ops on a persistent session.

    Args:
        params_or_path: canonical dict {TF variable name: float32 array} or a weights path.
        size: 1900, 256 or 64; detected from the shapes when None.
    """

    def __init__(self, params_or_path, size: int | None = None):
        params, self.size = resolve_params(params_or_path, size)
        self._graph = tf.Graph()
        with self._graph.as_default():
            g = build_graph(params, self.size)
            self._names = sorted(g.variables)
            variables = [g.variables[k] for k in self._names]
            grads = v1.gradients(g.loss, variables)  # IndexedSlices for the embedding
            self._grads = [tf.convert_to_tensor(gr) for gr in grads]  # dense, variable-shaped
            self._lr = v1.placeholder(tf.float32, shape=[], name="learning_rate")
            opt = v1.train.GradientDescentOptimizer(self._lr)
            self._sgd = opt.apply_gradients(list(zip(self._grads, variables)))
            self._init = v1.global_variables_initializer()
        self._graph.finalize()
        self._g = g
        self._sess = v1.Session(graph=self._graph)
        self._sess.run(self._init)

    def _feed(self, x: np.ndarray, y: np.ndarray) -> dict:
        g = self._g
        z = np.zeros((x.shape[0], g.cell.output_size), np.float32)  # (B, H) zero state
        if isinstance(g.initial_state[0], tuple):  # stacked: ((c_0..c_n), (h_0..h_n))
            n = len(g.initial_state[0])
            init = (tuple(z for _ in range(n)), tuple(z for _ in range(n)))
        else:  # one cell: (c, h)
            init = (z, z)
        return {g.x: x, g.y: y, g.batch_size: x.shape[0], g.initial_state: init}

    def gradients(self, x, y) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and d loss / d variable for the current variable values.

        Args:
            x: (B, T) int32 inputs, ``[24] + residues`` 0-padded.
            y: (B, T) int32 targets, ``residues + [25]`` 0-padded.

        Returns:
            ``(loss, {canonical key: float32 gradient array of the variable's shape})``.
        """
        x, y = _check_xy(x, y)
        loss, grads = self._sess.run([self._g.loss, self._grads], feed_dict=self._feed(x, y))
        return float(loss), {k: np.asarray(v, np.float32) for k, v in zip(self._names, grads)}

    def sgd_step(self, x, y, lr: float) -> float:
        """One ``GradientDescentOptimizer`` step; returns the loss before the step."""
        x, y = _check_xy(x, y)
        feed = self._feed(x, y)
        feed[self._lr] = float(lr)
        loss, _ = self._sess.run([self._g.loss, self._sgd], feed_dict=feed)
        return float(loss)

    def variable_values(self) -> dict[str, np.ndarray]:
        """Current variables as a canonical dict."""
        return {k: np.asarray(v) for k, v in self._sess.run(self._g.variables).items()}

    def close(self) -> None:
        self._sess.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def gradients(params: Mapping[str, np.ndarray] | str, x, y) -> tuple[float, dict[str, np.ndarray]]:
    """``(loss, {canonical key: gradient})`` of the babbler loss at ``params`` for batch (x, y)."""
    with Trainer(params) as t:
        return t.gradients(x, y)


def sgd_steps(
    params: Mapping[str, np.ndarray] | str, batches: Iterable[tuple], lr: float, n: int
) -> tuple[dict[str, np.ndarray], list[float]]:
    """``n`` plain SGD steps from ``params``, cycling through ``batches`` ((x, y) pairs) in order.

    Returns the new canonical parameters and the loss before each step.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("sgd_steps needs at least one (x, y) batch")
    with Trainer(params) as t:
        losses = [t.sgd_step(*batches[k % len(batches)], lr) for k in range(n)]
        return t.variable_values(), losses
