"""An independent count of the multiply-accumulates of an ONNX file, to check archlint's against.

Written from the ONNX operator definitions; it shares no code with archlint. Shapes come
from onnx's own shape inference on the file with its inputs pinned and its declared
intermediate shapes cleared. Where inference leaves the shapes of a counted op unknown,
the graph is executed by onnx's reference evaluator on zero inputs and the real tensors
give the shapes. ``If`` nodes are replaced by the branch their condition takes.

Per op, the standard convention (FLOPs = 2 x MACs):

- Conv, ConvInteger, QLinearConv: each output element sums input channels / group x kernel
  products, i.e. ``prod(Y) * prod(W.shape[1:])``.
- ConvTranspose: each input element is scattered through ``Cout / group x kernel`` weights,
  i.e. ``prod(X) * prod(W.shape[1:])`` (W is ``[Cin, Cout/group, k...]``).
- MatMul, MatMulInteger, QLinearMatMul, Gemm: ``prod(Y) * K``, K the contracted length.
- LSTM, GRU, RNN, DynamicQuantizeLSTM: per time step, batch row and direction,
  ``gates * hidden * (input + hidden)``; 4 gates for LSTM, 3 for GRU, 1 for RNN.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, shape_inference

#: op -> (data input position, weight input position) of the convolutions
CONVS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1)}
#: op -> (A, B) input positions of the matrix products
MATMULS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "DynamicQuantizeLSTM": 4}
COUNTED = set(CONVS) | set(MATMULS) | set(GATES)


def _zeros(value: onnx.ValueInfoProto, dims, scalars: dict) -> np.ndarray:
    dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    if value.name in scalars:
        return np.array(scalars[value.name], dtype=dtype).reshape(dims)
    return np.zeros(dims, dtype=dtype)


def _inputs(model: onnx.ModelProto, shapes: dict, scalars: dict) -> dict[str, np.ndarray]:
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = shapes.get(value.name) or [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = _zeros(value, dims, scalars)
    return feeds


def _run(model: onnx.ModelProto, feeds: dict, names: list[str]) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    with np.errstate(all="ignore"):  # zero inputs through real weights: overflow in a sigmoid is harmless here
        return ReferenceEvaluator(probe).run(None, feeds)


def _inline_ifs(model: onnx.ModelProto, feeds: dict) -> None:
    """Replace each top-level ``If`` by the nodes of the branch its condition takes."""
    while True:
        position = next((i for i, n in enumerate(model.graph.node) if n.op_type == "If"), None)
        if position is None:
            return
        node = model.graph.node[position]
        (condition,) = _run(model, feeds, [node.input[0]])
        branch = next(a.g for a in node.attribute if a.name == ("then_branch" if bool(condition) else "else_branch"))
        nodes = list(branch.node) + [helper.make_node("Identity", [inner.name], [outer])
                                     for inner, outer in zip(branch.output, node.output)]
        model.graph.initializer.extend(branch.initializer)
        rest = list(model.graph.node)
        del model.graph.node[:]
        model.graph.node.extend(rest[:position] + nodes + rest[position + 1:])


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
            shapes[value.name] = [d.dim_value for d in tensor.shape.dim]
    return shapes


def _recurrent_outputs(node: onnx.NodeProto, shapes: dict) -> dict[str, list[int]]:
    """Output shapes of a recurrent node from its definition (for ops inference cannot shape)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    x = shapes.get(node.input[0])
    if x is None:
        return {}
    seq, batch = (x[0], x[1]) if attrs.get("layout", 0) == 0 else (x[1], x[0])
    dirs = 2 if attrs.get("direction", b"forward") == b"bidirectional" else 1
    hidden = attrs["hidden_size"]
    out = {}
    for index, dims in enumerate(([seq, dirs, batch, hidden], [dirs, batch, hidden], [dirs, batch, hidden])):
        if index < len(node.output) and node.output[index]:
            out[node.output[index]] = dims
    return out


def _with_standins(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which recurrent ops of other domains (which the reference evaluator cannot run)
    are replaced by zeros of their output shapes: ``Y`` is ``[seq, directions, batch, hidden]``
    and the final states ``[directions, batch, hidden]``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for node in copy.graph.node:
        if node.op_type not in GATES or node.domain in ("", "ai.onnx"):
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        dirs = 2 if attrs.get("direction", b"forward") == b"bidirectional" else 1
        tag = f"standin_{len(nodes)}"
        const = lambda name, values: helper.make_node(  # noqa: E731
            "Constant", [], [f"{tag}_{name}"], value=helper.make_tensor(f"{tag}_{name}", onnx.TensorProto.INT64,
                                                                       [len(values)], values))
        nodes += [helper.make_node("Shape", [node.input[0]], [f"{tag}_x"]),
                  const("seq_at", [0]), const("batch_at", [1]), const("dirs", [dirs]),
                  const("hidden", [attrs["hidden_size"]]),
                  helper.make_node("Gather", [f"{tag}_x", f"{tag}_seq_at"], [f"{tag}_seq"]),
                  helper.make_node("Gather", [f"{tag}_x", f"{tag}_batch_at"], [f"{tag}_batch"])]
        dims = {0: [f"{tag}_seq", f"{tag}_dirs", f"{tag}_batch", f"{tag}_hidden"],
                1: [f"{tag}_dirs", f"{tag}_batch", f"{tag}_hidden"], 2: [f"{tag}_dirs", f"{tag}_batch", f"{tag}_hidden"]}
        for index, out in enumerate(node.output):
            if out:
                nodes += [helper.make_node("Concat", dims[index], [f"{tag}_shape{index}"], axis=0),
                          helper.make_node("ConstantOfShape", [f"{tag}_shape{index}"], [out])]
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy


def _needed(node: onnx.NodeProto) -> list[str]:
    """The tensors whose shapes the count of ``node`` reads."""
    if node.op_type in CONVS:
        x, w = CONVS[node.op_type]
        return [node.input[x], node.input[w], node.output[0]]
    if node.op_type in MATMULS:
        return [node.input[MATMULS[node.op_type][0]], node.output[0]]
    return [node.input[0]]


def node_macs(node: onnx.NodeProto, shapes: dict) -> int:
    """Multiply-accumulates of one counted node."""
    op = node.op_type
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if op in CONVS:
        x, w = (shapes[node.input[i]] for i in CONVS[op])
        read = x if op == "ConvTranspose" else shapes[node.output[0]]
        return math.prod(read) * math.prod(w[1:])
    if op in MATMULS:
        a = shapes[node.input[MATMULS[op][0]]]
        k = a[0] if op == "Gemm" and attrs.get("transA", 0) else a[-1]
        return math.prod(shapes[node.output[0]]) * k
    x = shapes[node.input[0]]
    seq, batch, size = (x[0], x[1], x[2]) if attrs.get("layout", 0) == 0 else (x[1], x[0], x[2])
    dirs = 2 if attrs.get("direction", b"forward") == b"bidirectional" else 1
    hidden = attrs["hidden_size"]
    return seq * batch * dirs * GATES[op] * hidden * (size + hidden)


def count(path: Path, input_shapes: dict[str, list[int]], scalars: dict | None = None) -> Counter:
    """MACs of the file at ``path`` per op type, at the given input shapes."""
    totals: Counter = Counter()
    for node, macs in node_counts(path, input_shapes, scalars):
        totals[node.op_type] += macs
    return totals


def node_counts(path: Path, input_shapes: dict[str, list[int]],
                scalars: dict | None = None) -> list[tuple[onnx.NodeProto, int]]:
    """(node, MACs) of every counted node of the file at ``path``, in graph order."""
    scalars = scalars or {}
    model = onnx.load(str(path))
    for value in model.graph.input:
        if value.name in input_shapes:
            shape = value.type.tensor_type.shape
            shape.Clear()
            for d in input_shapes[value.name]:
                shape.dim.add().dim_value = d
    del model.graph.value_info[:]
    for value in model.graph.output:
        value.type.tensor_type.ClearField("shape")
    feeds = _inputs(model, input_shapes, scalars)
    _inline_ifs(model, feeds)
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes = _known_shapes(inferred)
    for node in inferred.graph.node:  # ops of other domains: recurrent outputs from their definition
        if node.op_type in GATES and node.domain not in ("", "ai.onnx") and node.output[0] not in shapes:
            model.graph.value_info.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)
                                          for name, dims in _recurrent_outputs(node, shapes).items())
            inferred = shape_inference.infer_shapes(model, data_prop=True)
            shapes = _known_shapes(inferred)
    counted = [n for n in inferred.graph.node if n.op_type in COUNTED]
    missing = sorted({name for n in counted for name in _needed(n) if name not in shapes})
    if missing:
        values = _run(_with_standins(model), feeds, missing)
        shapes.update({name: list(np.shape(v)) for name, v in zip(missing, values)})
    return [(node, node_macs(node, shapes)) for node in counted]
