"""An oracle TensorFlow itself provides: the reference graph rewritten to float64, run by TF.

No conversion to JAX is involved, so every graph TF can run has an oracle, whatever ops tf2jax
lacks. From the frozen reference graph (:func:`~unirep_port.porting.convert.graph_spec_of`):

* the weights (float constants of more than one element) are lifted to placeholders
  (``graphdef.lift_constants``), so they can be fed in float64 or nudged;
* the **exact result** is the graph with every float32 type rewritten to float64
  (``graphdef.to_float64``: attributes, constants, the While bodies' signatures), run by TF with
  the weights and float inputs cast to float64;
* each **witness** is the float32 graph, run by TF with every weight nudged by one ulp up, down
  or not at all (seeded): the same math, rounding differently.

Any tensor of the graph outside a loop body can be fetched beside the outputs (``tensors=``), in
float64 and in every witness: the judge bounds a port's taps against them. An op that TF cannot
run in float64 (no double kernel, e.g. ``FusedBatchNormV3``) raises :class:`OracleError` naming
the op and its node.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from unirep_port.porting import graphdef as gd
from unirep_port.porting.convert import GraphSpec, graph_spec_of
from unirep_port.tfstart import import_tensorflow


class OracleError(ValueError):
    """TF cannot run the reference graph's float64 twin; the message names the op and node."""


def nudge(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each element one ulp up, one ulp down or unchanged, uniformly (unbiased).

    Bitwise ``np.nextafter(x, +-inf)`` for the same draws: on the bit pattern of a finite
    nonzero float, one ulp away from zero is the next integer (towards zero the previous);
    zeros, infinities and NaN go through ``nextafter`` itself.
    """
    x = np.asarray(x)
    d = rng.integers(-1, 2, x.shape)  # -1, 0, +1
    if x.dtype not in (np.float32, np.float64):
        up, down = np.nextafter(x, np.inf), np.nextafter(x, -np.inf)
        return np.where(d > 0, up, np.where(d < 0, down, x)).astype(x.dtype)
    ints = np.int32 if x.dtype == np.float32 else np.int64
    bits = x.view(ints)
    out = (bits + (d * np.where(x > 0, 1, -1)).astype(ints)).view(x.dtype)
    odd = (x == 0) | ~np.isfinite(x)
    if odd.any():
        towards = np.where(d[odd] > 0, np.inf, -np.inf).astype(x.dtype)
        out[odd] = np.where(d[odd] == 0, x[odd], np.nextafter(x[odd], towards))
    return out


def culprit(err: Exception) -> str:
    """``op 'X' (node 'n')`` read off a TF error message, or the message itself."""
    text = str(err)
    op = re.search(r"Op<name=(\w+)|Op '(\w+)'|op '(\w+)'|OpKernel[^']*'(\w+)'", text)
    node = re.search(r"\{\{node ([^}\s]+)\}\}|node (\S+?)[ :]", text)
    name_op = next((g for g in (op.groups() if op else ()) if g), None)
    name_node = next((g for g in (node.groups() if node else ()) if g), None)
    if name_op or name_node:
        return f"op {name_op or '?'!r} (node {name_node or '?'!r})"
    return text.splitlines()[0][:300]


class _Runner:
    """One imported copy of the lifted graph in its own TF session, fed by name."""

    def __init__(self, spec: GraphSpec, params: dict, dtype, example_args: tuple):
        tf = import_tensorflow()
        v1 = tf.compat.v1
        self.graph = tf.Graph()
        self.names = sorted(params)
        with self.graph.as_default():
            self.inputs = [
                v1.placeholder(self._dtype(a, dtype), [None] * np.ndim(a), name=f"oracle_in_{i}")
                for i, a in enumerate(example_args)
            ]
            feed = dict(zip(spec.inputs, self.inputs))
            feed.update({name: make(*self.inputs) for name, make in spec.derived.items()})
            v1.import_graph_def(spec.graph_def, input_map=feed, name="")
        self.sess = v1.Session(graph=self.graph)
        self.dtype = dtype

    @staticmethod
    def _dtype(a, dtype):
        a = np.asarray(a)
        return dtype if np.issubdtype(a.dtype, np.floating) else a.dtype

    def run(self, fetches: Sequence[str], args: tuple, params: dict) -> list[np.ndarray]:
        feed = {
            p: np.asarray(a).astype(self._dtype(a, self.dtype)) for p, a in zip(self.inputs, args)
        }
        feed.update({f"{n}:0": params[n] for n in self.names})
        return self.sess.run(list(fetches), feed_dict=feed)


class TFOracle:
    """The :class:`~unirep_port.porting.judge.Oracle` of a TF graph, computed by TF.

    ``oracle(*args, members=K, seed=S, tensors=())`` returns ``(exact, witnesses)`` like every
    oracle; with ``tensors`` (graph tensor names) it returns ``(exact, witnesses, extra)`` where
    ``extra`` is ``(exact values, [witness values])`` of those tensors.
    """

    def __init__(self, spec: GraphSpec, example_args: Sequence[np.ndarray]):
        self.spec = spec
        lifted, self.params = gd.lift_constants(spec.graph_def)
        lifted_spec = GraphSpec(lifted, spec.inputs, spec.outputs, spec.derived)
        example_args = tuple(np.asarray(a) for a in example_args)
        self._f32 = _Runner(lifted_spec, self.params, np.float32, example_args)
        self._params64 = {n: v.astype(np.float64) for n, v in self.params.items()}
        try:
            spec64 = GraphSpec(gd.to_float64(lifted), spec.inputs, spec.outputs, spec.derived)
            self._f64 = _Runner(spec64, self._params64, np.float64, example_args)
        except (ValueError, TypeError) as err:
            raise OracleError(
                f"TF cannot build the float64 twin of the reference graph: {culprit(err)} "
                "accepts no float64; give judge() an oracle of your own"
            ) from err
        self._memo: dict[tuple, tuple] = {}

    @classmethod
    def of(cls, reference, *example_args, dynamic_axes=(0, 1)) -> TFOracle:
        """The TF oracle of a ``tf.function`` or a v1 graph builder, traced for the examples."""
        return cls(graph_spec_of(reference, example_args, dynamic_axes), example_args)

    @property
    def outputs(self) -> list[str]:
        out = self.spec.outputs
        return [out] if isinstance(out, str) else list(out)

    def tensor_names(self) -> list[str]:
        """Every float tensor of the top-level graph (what a tap may name)."""
        names = []
        for op in self._f32.graph.get_operations():
            for t in op.outputs:
                if t.dtype.is_floating and not op.name.startswith("oracle_in_"):
                    names.append(t.name)
        return names

    def _exact(self, fetches, args):
        tf = import_tensorflow()
        try:
            return self._f64.run(fetches, args, self._params64)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            raise OracleError(
                f"TF cannot run the float64 twin of the reference graph: {culprit(err)} "
                "has no float64 kernel; give judge() an oracle of your own"
            ) from err

    def __call__(self, *args, members: int, seed: int, tensors: Sequence[str] = ()):
        fetches = [*self.outputs, *tensors]
        key = (
            members,
            seed,
            tuple(fetches),
            *((a.shape, a.dtype.str, a.tobytes()) for a in map(np.asarray, args)),
        )
        if key not in self._memo:
            exact = self._exact(fetches, args)
            rng = np.random.default_rng(seed)
            wits = []
            for _ in range(members):
                nudged = {n: nudge(v, rng) for n, v in self.params.items()}
                wits.append(self._f32.run(fetches, args, nudged))
            self._memo[key] = (exact, wits)
        exact, wits = self._memo[key]
        n = len(self.outputs)
        single = isinstance(self.spec.outputs, str)

        def shape(values):
            return values[0] if single else tuple(values[:n])

        main = (shape(exact), [shape(w) for w in wits])
        if not tensors:
            return main
        return (*main, (list(exact[n:]), [list(w[n:]) for w in wits]))

    def float32(self, *args, tensors: Sequence[str] = ()) -> list[np.ndarray]:
        """The unnudged float32 graph's values of ``tensors`` (the reference's intermediates)."""
        return self._f32.run(list(tensors), args, self.params)

    def close(self) -> None:
        self._f32.sess.close()
        self._f64.sess.close()
