"""Read a quantized ONNX model as the float model it came from (a rewrite before shape inference).

Quantization tools replace a float model's layers by operator forms: ``QLinearConv``,
``ConvInteger``, ``QLinearMatMul``, ``MatMulInteger`` (standard ONNX) and onnxruntime's
contrib ops (``com.microsoft`` ``QLinearAdd``, ``QGemm``, ``QLinearGlobalAveragePool``,
``DynamicQuantizeLSTM``...). Shape inference knows no contrib op, and every layer would
need its own table of which input is data, weight or a quantization parameter. So each
such node is rewritten into the float op it computes, with its data, weight and bias at
the float op's input positions; the original op name is kept for the report.

Dynamic quantization (``DynamicQuantizeLinear`` before an integer op, then ``Cast`` and a
``Mul`` by the product of the scales, then an ``Add`` of the bias) is read back the same
way: the quantizer becomes an ``Identity``, the rescaling ``Mul`` an ``Identity`` of its
data, the scale arithmetic is dropped, and a conv's bias ``Add`` goes back into the conv.

``QuantizeLinear``, ``DequantizeLinear`` and ``Cast`` are standard ops shape inference
handles; the graph builder passes data through them. What this pass records for it:
the original op of each rewritten node, learned inputs the float form has no slot for
(the bias of ``DynamicQuantizeMatMul``) and the float name of each dequantized weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import onnx

from .onnx_nodes import STANDARD_DOMAINS, qualified_op, subgraphs

__all__ = ["FloatView", "read_as_float", "is_quantized", "float_weight_name", "float_node_name"]

_MS = "com.microsoft"
#: Suffixes onnxruntime's quantizer appends to the initializers it quantizes and to the
#: names of the nodes it replaces.
_QUANTIZED_SUFFIX = "_quantized"
_NODE_SUFFIX = "_quant"


class _FloatForm(NamedTuple):
    """The float op a quantized op computes; ``inputs[i]`` is where float input ``i`` sits."""

    op_type: str
    inputs: tuple[int, ...]
    #: Positions of learned inputs the float op has no slot for (counted as parameters).
    params: tuple[int, ...] = ()


_FORMS: dict[tuple[str, str], _FloatForm] = {
    ("", "QLinearConv"): _FloatForm("Conv", (0, 3, 8)),
    (_MS, "QLinearConv"): _FloatForm("Conv", (0, 3, 8)),
    ("", "ConvInteger"): _FloatForm("Conv", (0, 1)),
    ("", "QLinearMatMul"): _FloatForm("MatMul", (0, 3)),
    ("", "MatMulInteger"): _FloatForm("MatMul", (0, 1)),
    (_MS, "QGemm"): _FloatForm("Gemm", (0, 3, 6)),
    (_MS, "DynamicQuantizeMatMul"): _FloatForm("MatMul", (0, 1), params=(4,)),
    (_MS, "MatMulIntegerToFloat"): _FloatForm("MatMul", (0, 1), params=(6,)),
    (_MS, "DynamicQuantizeLSTM"): _FloatForm("LSTM", (0, 1, 2, 3, 4, 5, 6, 7)),
    (_MS, "QLinearAdd"): _FloatForm("Add", (0, 3)),
    (_MS, "QLinearMul"): _FloatForm("Mul", (0, 3)),
    (_MS, "QLinearGlobalAveragePool"): _FloatForm("GlobalAveragePool", (0,)),
    (_MS, "QLinearAveragePool"): _FloatForm("AveragePool", (0,)),
    (_MS, "QLinearSigmoid"): _FloatForm("Sigmoid", (0,)),
    (_MS, "QLinearLeakyRelu"): _FloatForm("LeakyRelu", (0,)),
    (_MS, "QLinearSoftmax"): _FloatForm("Softmax", (0,)),
    (_MS, "QLinearConcat"): _FloatForm("Concat", ()),  # inputs: y_scale, y_zp, then (x, scale, zp) triples
}


@dataclass
class FloatView:
    """What the rewrite recorded for the graph builder, keyed by tensor name."""

    #: First output of a rewritten node -> the op it had in the file (``com.microsoft::QGemm``).
    source_ops: dict[str, str] = field(default_factory=dict)
    #: First output of a rewritten node -> learned inputs its float form has no slot for.
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Output of a ``DequantizeLinear`` of a stored weight -> the quantized initializer it reads.
    dequantized: dict[str, str] = field(default_factory=dict)


def float_weight_name(name: str, view: FloatView) -> str:
    """The float model's name of a weight: through ``DequantizeLinear``, without the quantizer's suffix.

    Examples
    --------
    >>> float_weight_name("conv1.weight_quantized", FloatView())
    'conv1.weight'
    >>> float_weight_name("w_DequantizeLinear_Output", FloatView(dequantized={"w_DequantizeLinear_Output": "w_quantized"}))
    'w'
    """
    name = view.dequantized.get(name, name)
    return name[:-len(_QUANTIZED_SUFFIX)] if name.endswith(_QUANTIZED_SUFFIX) else name


def float_node_name(name: str, output: str, view: FloatView) -> str:
    """The float model's name of a node the quantizer replaced (``Conv_3_quant`` -> ``Conv_3``).

    Examples
    --------
    >>> float_node_name("Conv_3_quant", "y", FloatView(source_ops={"y": "ConvInteger"}))
    'Conv_3'
    >>> float_node_name("Conv_3_quant", "y", FloatView())
    'Conv_3_quant'
    """
    if output in view.source_ops and name.endswith(_NODE_SUFFIX):
        return name[:-len(_NODE_SUFFIX)]
    return name


#: Op types the rewrite reads or rewrites; a model with none of them is left as it is.
_QUANTIZATION_OPS = frozenset({op_type for _, op_type in _FORMS} | {"DequantizeLinear", "DynamicQuantizeLinear"})


def is_quantized(ops: set[str]) -> bool:
    """Whether a graph of these op types has anything for :func:`read_as_float` to read or rewrite."""
    return not _QUANTIZATION_OPS.isdisjoint(ops)


def read_as_float(model: onnx.ModelProto, ops: set[str]) -> FloatView:
    """Rewrite ``model.graph`` and its subgraphs in place (see the module docstring); returns
    what it recorded. ``ops`` are the graph's :func:`~.onnx_nodes.op_types`."""
    view = FloatView()
    if not is_quantized(ops):
        return view  # a float model: nothing to read back, whatever its size
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 1)
    _graph_as_float(model.graph, view, opset, set())
    return view


def _graph_as_float(graph: onnx.GraphProto, view: FloatView, opset: int, outer: set[str]) -> None:
    initializers = outer | {t.name for t in graph.initializer}
    rewritten: set[str] = set()
    for node in graph.node:
        for sub in subgraphs(node):  # the branches of an If, the body of a Loop
            _graph_as_float(sub, view, opset, initializers)
        domain = "" if node.domain == "ai.onnx" else node.domain
        if node.op_type == "DequantizeLinear" and domain == "" and node.input and node.input[0] in initializers:
            view.dequantized[node.output[0]] = node.input[0]
        form = _FORMS.get((domain, node.op_type))
        if form is None or _channels_last(node):
            continue
        source_op = qualified_op(domain, node.op_type)
        inputs = list(node.input)
        positions = range(2, len(inputs), 3) if node.op_type == "QLinearConcat" else form.inputs
        new_inputs = [inputs[p] if p < len(inputs) else "" for p in positions]
        while new_inputs and not new_inputs[-1]:
            new_inputs.pop()
        extra = tuple(inputs[p] for p in form.params if p < len(inputs) and inputs[p])
        _retype(node, form.op_type, new_inputs, opset)
        view.source_ops[node.output[0]] = source_op
        if extra:
            view.params[node.output[0]] = extra
        rewritten.update(o for o in node.output if o)
    rewritten |= _undo_dynamic_quantization(graph, view, initializers)
    if rewritten:  # declared types of rewritten outputs (uint8, int32) no longer hold
        keep = [v for v in graph.value_info if v.name not in rewritten]
        del graph.value_info[:]
        graph.value_info.extend(keep)


def _channels_last(node: onnx.NodeProto) -> bool:
    return any(a.name == "channels_last" and a.i for a in node.attribute)


def _retype(node: onnx.NodeProto, op_type: str, inputs: list[str], opset: int) -> None:
    """Make ``node`` a standard ``op_type`` node reading ``inputs``, keeping the attributes it knows."""
    try:
        known = set(onnx.defs.get_schema(op_type, opset, "").attributes)
    except onnx.defs.SchemaError:
        known = set()
    attributes = [a for a in node.attribute if a.name in known]
    node.op_type, node.domain = op_type, ""
    del node.input[:]
    node.input.extend(inputs)
    del node.attribute[:]
    node.attribute.extend(attributes)


def _undo_dynamic_quantization(graph: onnx.GraphProto, view: FloatView, initializers: set[str]) -> set[str]:
    """Read dynamic quantization's quantize -> integer op -> cast -> rescale [-> bias add] as the float op.

    Returns the outputs whose declared types the rewrite invalidated.
    """
    nodes = list(graph.node)
    scales: set[str] = set()  # tensors computed from DynamicQuantizeLinear's scale and zero point
    constants = set(initializers) | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    for node in nodes:
        if node.op_type == "DynamicQuantizeLinear" and node.domain in STANDARD_DOMAINS:
            scales.update(o for o in node.output[1:] if o)
        elif any(i in scales for i in node.input) and all(i in scales or i in constants for i in node.input if i):
            scales.update(o for o in node.output if o)
        elif node.input and all(i in constants for i in node.input if i):
            constants.update(o for o in node.output if o)
    if not scales:
        return set()
    changed: set[str] = set()
    producer = {o: n for n in nodes for o in n.output if o}
    dims = {t.name: list(t.dims) for t in graph.initializer}
    for node in nodes:
        if node.op_type not in ("Mul", "Add") or node.domain not in STANDARD_DOMAINS or len(node.input) != 2:
            continue
        data = [i for i in node.input if i not in scales]
        if len(data) != 1 or data[0] in constants:
            continue
        if node.op_type == "Mul":  # dequantization: x * (x_scale * w_scale)
            _to_identity(node, data[0])
            changed.update(node.output)
        elif _fold_quantized_bias(node, data[0], producer, dims, view):
            changed.update(node.output)
    _fold_conv_bias(graph, view, changed)
    outputs = {o.name for o in graph.output}
    _drop_dead(graph, scales, outputs)
    readers = _readers(graph)
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear" and node.domain in STANDARD_DOMAINS \
                and not any(readers.get(o) or o in outputs for o in node.output[1:] if o):
            _to_identity(node, node.input[0])
            changed.update(node.output)
    return changed


def _fold_quantized_bias(add: onnx.NodeProto, data: str, producer: dict[str, onnx.NodeProto],
                         dims: dict[str, list[int]], view: FloatView) -> bool:
    """Integer op -> ``Add`` of its bias quantized on the fly (older onnxruntime: the float bias
    divided by the scales, floored, cast): the bias goes back to the layer, the ``Add`` passes data on."""
    layer = producer.get(data)
    source_op = view.source_ops.get(data) if layer is not None else None
    if source_op not in ("ConvInteger", "MatMulInteger") or len(layer.input) != 2:
        return False
    name = add.input[1] if add.input[0] == data else add.input[0]
    for _ in range(8):  # back through Reshape, Cast, Floor, Div by the scales...
        if name in dims or name not in producer or not producer[name].input:
            break
        name = producer[name].input[0]
    weight = dims.get(layer.input[1])
    channels = (weight[:1] if layer.op_type == "Conv" else weight[-1:]) if weight else None
    if not channels or dims.get(name) != channels:
        return False
    if layer.op_type == "Conv":
        layer.input.append(name)
    else:
        view.params[data] = (name,)
    _to_identity(add, data)
    return True


def _to_identity(node: onnx.NodeProto, source: str) -> None:
    output = node.output[0]
    node.op_type, node.domain = "Identity", ""
    del node.input[:], node.output[:], node.attribute[:]
    node.input.append(source)
    node.output.append(output)


def _readers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                readers.setdefault(name, []).append(node)
    return readers


def _sole_reader(readers, name: str, outputs: set[str], op_type: str) -> onnx.NodeProto | None:
    found = readers.get(name, [])
    if len(found) == 1 and name not in outputs and found[0].op_type == op_type:
        return found[0]
    return None


def _fold_conv_bias(graph: onnx.GraphProto, view: FloatView, changed: set[str]) -> None:
    """``Conv`` (was ``ConvInteger``) -> ``Cast`` -> ``Identity`` (was the rescale) -> ``Add`` of a
    per-channel constant: the ``Add`` is the conv's bias, as in the float model. (A matrix
    product's bias ``Add`` is the graph builder's to fold, as for float models.)"""
    readers = _readers(graph)
    outputs = {o.name for o in graph.output}
    producer = {o: n for n in graph.node for o in n.output if o}
    dims = {t.name: list(t.dims) for t in graph.initializer}
    removed: list[onnx.NodeProto] = []
    for conv in graph.node:
        if conv.op_type != "Conv" or view.source_ops.get(conv.output[0]) != "ConvInteger" or len(conv.input) != 2:
            continue
        cast = _sole_reader(readers, conv.output[0], outputs, "Cast")
        rescale = cast and _sole_reader(readers, cast.output[0], outputs, "Identity")
        add = rescale and _sole_reader(readers, rescale.output[0], outputs, "Add")
        if add is None or len(add.input) != 2:
            continue
        bias = _bias_source(add.input[1] if add.input[0] == rescale.output[0] else add.input[0], producer, dims)
        weight = dims.get(conv.input[1])
        if bias is None or not weight or dims[bias] != weight[:1]:
            continue
        changed.add(conv.output[0])
        view.source_ops[add.output[0]] = view.source_ops.pop(conv.output[0])
        conv.input.append(bias)
        conv.output[0] = add.output[0]
        removed += [cast, rescale, add]
    _remove(graph, removed)


def _bias_source(name: str, producer: dict[str, onnx.NodeProto], dims: dict[str, list[int]]) -> str | None:
    """The 1-D initializer a constant bias operand is reshaped from, if it is one."""
    for _ in range(4):
        if name in dims:
            return name if len(dims[name]) == 1 else None
        node = producer.get(name)
        if node is None or node.op_type not in ("Reshape", "Unsqueeze", "Identity"):
            return None
        name = node.input[0]
    return None


def _drop_dead(graph: onnx.GraphProto, scales: set[str], outputs: set[str]) -> None:
    """Remove the scale arithmetic nothing reads any more."""
    while True:
        readers = _readers(graph)
        dead = [n for n in graph.node if n.output and all(o in scales and not readers.get(o) and o not in outputs
                                                          for o in n.output if o)]
        if not dead:
            return
        _remove(graph, dead)


def _remove(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Remove ``nodes`` in one pass. They are known by op and first output: an output is
    unique in a graph, except that a folded bias ``Add`` shares its output with the conv
    that now produces it."""
    gone = {(n.op_type, n.output[0]) for n in nodes}
    keep = [n for n in graph.node if not (n.output and (n.op_type, n.output[0]) in gone)]
    del graph.node[:]
    graph.node.extend(keep)
