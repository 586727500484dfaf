"""GraphDef surgery for the conversion: TF1 control-flow detection, weight lifting, float64 twin.

Three rewrites of a frozen ``GraphDef`` (variables already turned into ``Const`` nodes), each a
pure function returning a new proto:

* :func:`v1_control_flow` lists the nodes that use TF1 control flow (``Enter``/``Exit``/``Merge``/
  ``Switch``/``NextIteration``/``LoopCond``), which tf2jax cannot convert.
* :func:`lift_constants` turns every float ``Const`` node with more than one element (weights,
  biases) into a ``Placeholder`` of the same name, so the converted function takes them as
  parameters: they can be cast to float64 or nudged by one ulp without touching the graph.
* :func:`to_float64` rewrites every float32 dtype of the graph (op attributes, constants, the
  function library's signatures) to float64: the graph's own math, computed in float64. Fused
  ops whose TF kernels take no float64 are first written out as the elementwise math they fuse
  (:func:`unfuse`: inference ``FusedBatchNorm``/``V2``/``V3`` with channels last).
"""

from __future__ import annotations

import numpy as np

from unirep_port.tfstart import import_tensorflow

V1_CONTROL_FLOW = ("Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "RefEnter")


def all_nodes(graph_def):
    """Every node of the graph and of its function library, with the function's name or ''."""
    for node in graph_def.node:
        yield "", node
    for fn in graph_def.library.function:
        for node in fn.node_def:
            yield fn.signature.name, node


def v1_control_flow(graph_def) -> list[str]:
    """``"op node-name"`` of every node that uses TF1 control flow (empty when none does)."""
    return [
        f"{node.op} {fn + '/' if fn else ''}{node.name}"
        for fn, node in all_nodes(graph_def)
        if node.op in V1_CONTROL_FLOW
    ]


def lift_constants(graph_def, keep: frozenset[str] = frozenset()) -> tuple[object, dict]:
    """Top-level float ``Const`` nodes of >1 element become placeholders; returns (graph, values).

    ``values`` maps node name -> NumPy array (the constant's value, its own dtype). Names in
    ``keep`` stay constants.
    """
    tf = import_tensorflow()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    values: dict[str, np.ndarray] = {}
    floats = (tf.float16.as_datatype_enum, tf.float32.as_datatype_enum, tf.float64.as_datatype_enum)
    for node in out.node:
        if node.op != "Const" or node.name in keep or node.attr["dtype"].type not in floats:
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        if value.size < 2:
            continue
        values[node.name] = value
        dtype = node.attr["dtype"].type
        node.op = "Placeholder"
        node.ClearField("attr")
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
    return out, values


def _retype_attr(attr, f32: int, f64: int, tf) -> None:
    """One AttrValue, float32 -> float64 in place (type, list of types, tensor)."""
    kind = attr.WhichOneof("value")
    if kind == "type" and attr.type == f32:
        attr.type = f64
    elif kind == "list":
        attr.list.type[:] = [f64 if t == f32 else t for t in attr.list.type]
    elif kind == "tensor" and attr.tensor.dtype == f32:
        value = tf.make_ndarray(attr.tensor).astype(np.float64)
        attr.tensor.CopyFrom(tf.make_tensor_proto(value, dtype=tf.float64, shape=value.shape))


FUSED_BATCH_NORM = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


def _consumed_outputs(graph_def, name: str) -> set[int]:
    """Which outputs of node ``name`` other top-level nodes read (0 for ``name`` alone)."""
    used = set()
    for node in graph_def.node:
        for inp in node.input:
            base, _, idx = inp.lstrip("^").partition(":")
            if base == name and not inp.startswith("^"):
                used.add(int(idx) if idx else 0)
    return used


def unfuse(graph_def):
    """A copy where each inference batch norm (``FusedBatchNorm*``, ``is_training`` false,
    channels last, only output 0 read) becomes ``x * inv + (offset - mean * inv)`` with
    ``inv = rsqrt(variance + epsilon) * scale``: TF's fused kernel has no float64, its math does.
    The node keeps its name (now the final ``AddV2``), so its consumers are untouched."""
    tf = import_tensorflow()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    added = []
    for node in out.node:
        if node.op not in FUSED_BATCH_NORM or node.attr["is_training"].b:
            continue
        fmt = node.attr["data_format"].s.decode() or "NHWC"
        if fmt not in ("NHWC", "NDHWC") or _consumed_outputs(out, node.name) - {0}:
            continue
        x, scale, offset, mean, var = list(node.input)[:5]
        t = node.attr["T"].type
        eps = tf.make_tensor_proto(np.float32(node.attr["epsilon"].f))
        n = node.name

        def make(op, name, inputs, t=t, **attrs):
            nd = tf.compat.v1.NodeDef(op=op, name=name, input=inputs)
            if op == "Const":
                nd.attr["dtype"].type = t
                nd.attr["value"].tensor.CopyFrom(attrs["value"])
            else:
                nd.attr["T"].type = t
            added.append(nd)
            return name

        e = make("Const", f"{n}/unfused/epsilon", [], value=eps)
        inv = make(
            "Mul",
            f"{n}/unfused/inv",
            [
                make(
                    "Rsqrt", f"{n}/unfused/rsqrt", [make("AddV2", f"{n}/unfused/var_eps", [var, e])]
                ),
                scale,
            ],
        )
        shift = make(
            "Sub", f"{n}/unfused/shift", [offset, make("Mul", f"{n}/unfused/mean_inv", [mean, inv])]
        )
        scaled = make("Mul", f"{n}/unfused/x_inv", [x, inv])
        node.op = "AddV2"
        node.ClearField("attr")
        node.attr["T"].type = t
        del node.input[:]
        node.input.extend([scaled, shift])
    out.node.extend(added)
    return out


def to_float64(graph_def):
    """A copy of ``graph_def`` with every float32 dtype (attributes, constants, signatures)
    replaced by float64 (fused ops without a float64 kernel written out first: :func:`unfuse`)."""
    tf = import_tensorflow()
    f32, f64 = tf.float32.as_datatype_enum, tf.float64.as_datatype_enum
    out = unfuse(graph_def)
    for _, node in all_nodes(out):
        for key in node.attr:
            _retype_attr(node.attr[key], f32, f64, tf)
    for fn in out.library.function:
        for arg in [*fn.signature.input_arg, *fn.signature.output_arg]:
            if arg.type == f32:
                arg.type = f64
        for key in fn.attr:
            _retype_attr(fn.attr[key], f32, f64, tf)
        for arg_attrs in fn.arg_attr.values():
            for key in arg_attrs.attr:
                _retype_attr(arg_attrs.attr[key], f32, f64, tf)
    return out


def rename_functions(graph_def, suffix: str):
    """A copy with every library function renamed ``<name><suffix>``, references included.

    TensorFlow keeps one eager registry of function definitions: two converted graphs whose
    ``While`` bodies share a name (``rnn_while_body_155``) but differ would collide there.
    """
    tf = import_tensorflow()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    new = {f.signature.name: f.signature.name + suffix for f in out.library.function}

    def fix(attr):
        kind = attr.WhichOneof("value")
        if kind == "func" and attr.func.name in new:
            attr.func.name = new[attr.func.name]
        elif kind == "list":
            for f in attr.list.func:
                if f.name in new:
                    f.name = new[f.name]

    for fn in out.library.function:
        fn.signature.name = new[fn.signature.name]
    for grad in out.library.gradient:
        grad.function_name = new.get(grad.function_name, grad.function_name)
    for _, node in all_nodes(out):
        if node.op in new:
            node.op = new[node.op]
        for key in node.attr:
            fix(node.attr[key])
    return out
