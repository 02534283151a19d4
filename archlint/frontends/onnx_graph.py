"""Convert a shape-inferred ONNX model into archlint's :class:`~archlint.graph.Graph`.

Maps ONNX ops to the canonical vocabulary, normalizes their attributes, counts
parameters per use, and names each layer by its PyTorch module path when the exporter
left one (legacy ``/layer1/layer1.0/conv1/Conv`` node names, dynamo
``pkg.torch.onnx.name_scopes`` metadata, or weight initializer names).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Container
from itertools import chain
from typing import NamedTuple

import networkx as nx
import numpy as np
import onnx

from ..errors import ModelLoadError
from ..formatting import format_dims
from ..gc_pause import gc_paused
from ..graph import Graph, Layer, Op, Source, reduction_op
from .construction import Definition
from .construction_onnx import metadata_list, onnx_definitions
from .einsum import einsum_contraction
from .naming import NameHint, layer_names
from .onnx_file import LoadedOnnx
from .onnx_nodes import STANDARD_DOMAINS, NodeFields, qualified_op, subgraphs
from .onnx_quantized import float_node_name, float_weight_name
from .onnx_recurrent import decomposed_note, recurrent_groups, reroll
from .sources import source_from_trace

__all__ = ["onnx_graph"]

_ACTIVATIONS = {
    "Relu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu",
    "Selu", "Celu", "Gelu", "Softplus", "Softsign", "Mish", "Erf", "Exp", "Log", "Sqrt", "Abs",
    "Neg", "Softmax", "LogSoftmax", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
    "ThresholdedRelu", "Shrink", "Sin", "Cos", "Swish",
}
_ADDS = {"Add", "Sub", "Sum"}
_MULS = {"Mul", "Div", "Pow", "Max", "Min", "Mean"}
_NORMS = {"BatchNormalization", "InstanceNormalization", "LayerNormalization",
          "GroupNormalization", "LpNormalization", "LRN", "MeanVarianceNormalization"}
_ELEMENTWISE = _ADDS | _MULS
#: Elementwise comparisons, logic and selection: no MACs, one op per output element, like Max.
_COMPARISONS = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Not",
                "Where", "IsNaN", "IsInf", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"}
_REDUCTIONS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
_RESHAPES = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile"}
#: Ops that hand their first input on unchanged for archlint's purposes: a type cast, and the
#: quantize/dequantize pairs around each layer of a QDQ-quantized model.
_PASS_THROUGH = {"Identity", "Dropout", "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear"}
#: Recurrent ops -> gates per cell.
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_PARAM_INPUTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
    "BatchNormalization": (1, 2), "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2), "PRelu": (1,), "LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3),
}
#: Ops that lay a tensor out anew (or fill a stored shape): a stored tensor through them stays stored.
_RELAYOUTS = {"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Identity", "Cast", "CastLike",
              "ConstantOfShape"}
#: Ops whose layer class follows from their type alone (the sets above do not overlap).
_OP_CLASSES: dict[str, Op] = {
    "Conv": Op.CONV, "ConvTranspose": Op.CONV_TRANSPOSE, "MaxPool": Op.MAX_POOL, "LpPool": Op.MAX_POOL,
    "AveragePool": Op.AVG_POOL, "GlobalAveragePool": Op.GLOBAL_POOL, "GlobalMaxPool": Op.GLOBAL_POOL,
    "GlobalLpPool": Op.GLOBAL_POOL, **dict.fromkeys(_GATES, Op.RECURRENT), **dict.fromkeys(_ADDS, Op.ADD),
    **dict.fromkeys(_MULS | _COMPARISONS, Op.MUL), "Concat": Op.CONCAT, **dict.fromkeys(_ACTIVATIONS, Op.ACTIVATION),
    **dict.fromkeys(_NORMS, Op.NORM), "Flatten": Op.FLATTEN, **dict.fromkeys(_RESHAPES, Op.RESHAPE),
    "Resize": Op.RESIZE, "Upsample": Op.RESIZE, "Split": Op.SLICE,
}
#: Layers with fields of their own beyond their shapes (see ``_Builder._normalize``).
_WITH_FIELDS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.MAX_POOL, Op.AVG_POOL, Op.GLOBAL_POOL, Op.LINEAR, Op.MATMUL,
                          Op.RECURRENT, Op.RESIZE, Op.PAD, Op.SLICE})
#: Layers named after their weight's module (see :func:`.naming.layer_names`).
_WEIGHT_NAMED = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR})
_MODULE_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*$")


@gc_paused
def onnx_graph(loaded: LoadedOnnx) -> Graph:
    """Build the layer graph of a model returned by :func:`~.onnx_file.load_onnx`."""
    return _Builder(loaded).build()


_ATTR = onnx.AttributeProto
#: Direct readers for the attribute types layers use; others go through onnx's helper.
_ATTR_READERS = {_ATTR.INT: lambda a: a.i, _ATTR.INTS: lambda a: a.ints[:], _ATTR.FLOAT: lambda a: a.f,
                 _ATTR.FLOATS: lambda a: a.floats[:], _ATTR.STRING: lambda a: a.s}


def _attrs(node: NodeFields) -> dict:
    out = {}
    for a in node.attribute:
        read = _ATTR_READERS.get(a.type)
        out[a.name] = read(a) if read is not None else onnx.helper.get_attribute_value(a)
    return out


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: A node's :class:`~.onnx_nodes.NodeFields` and, as ``attrs``, its attributes' values by name.
_Node = NamedTuple("_Node", [*NodeFields.__annotations__.items(), ("attrs", dict)])


def _node(fields: NodeFields) -> _Node:
    return tuple.__new__(_Node, (*fields, _attrs(fields) if fields.attribute else {}))


class _LayerNode(NamedTuple):
    """An ONNX node that becomes a layer: its op and its data (non-constant) inputs."""

    node: _Node
    op: Op
    data_inputs: list[str]


class _Builder:
    def __init__(self, loaded: LoadedOnnx) -> None:
        self.loaded = loaded
        self.source = loaded.source
        self.graph = Graph(model=loaded.source, format="onnx", notes=list(loaded.notes),
                           unsupported_ops=Counter(), inputs=[], outputs=[])
        self.producer: dict[str, tuple[str, int]] = {}
        #: Output of a MatMul by a constant matrix -> the constant vector the next Add adds to it.
        self.dense_bias: dict[str, str] = {}

    # -- naming ---------------------------------------------------------------------------

    def _scope(self, node: _Node) -> str | None:
        """Module scope of a node: dynamo metadata first, then a legacy node name."""
        raw = node.meta.get("pkg.torch.onnx.name_scopes")
        if raw:
            scopes = metadata_list(raw)
            if len(scopes) >= 2:
                return scopes[-2]
        name = node.name
        if name.startswith("/"):
            # "/layer1/layer1.0/conv1/Conv": each part repeats its parent's path or adds a level
            pieces: list[str] = []
            prev = ""
            for part in name.split("/")[1:-1]:
                if not part:
                    continue
                if prev and part.startswith(prev) and part.startswith(".", len(prev)):
                    pieces.append(part[len(prev):])
                else:
                    pieces.append(f".{part}" if pieces else part)
                prev = part
            return "".join(pieces)
        return None

    def _weight_module(self, node: _Node) -> str | None:
        """``P`` when the layer's weight (a conv's or linear layer's) is the initializer ``P.weight``."""
        if len(node.input) < 2:
            return None
        index = 0 if node.op_type == "Gemm" and node.input[0] in self.loaded.constant_names else 1
        weight = float_weight_name(node.input[index], self.loaded.float_view)
        if weight.endswith(".weight") and _MODULE_PATH.match(weight[:-7]):
            return weight[:-7]
        return None

    @staticmethod
    def _source_line(meta: dict[str, str]) -> Source | None:
        trace = meta.get("pkg.torch.onnx.stack_trace")
        return source_from_trace(trace) if trace is not None else None

    def _names(self, nodes: list[_LayerNode]) -> list[tuple[str, str, Source | None, str | None]]:
        """(name, origin, source, module path) for each layer node, names unique, in graph order (:mod:`.naming`).

        The module path is the module the layer belongs to (its weight's module, else its
        scope), before names are made unique; ``None`` where the model names no module.
        """
        view = self.loaded.float_view
        hints = []
        for n in nodes:
            node = n.node
            name = node.name
            if view.source_ops and node.output:  # a quantized node keeps its float model's name
                name = float_node_name(name, node.output[0], view)
            weight_module = self._weight_module(node) if n.op in _WEIGHT_NAMED else None
            hints.append(NameHint(self._scope(node), node.op_type, weight_module, name))
        named = layer_names(hints, reserved=self.producer_names)
        result = []
        for n, (scope, _, weight_module, _), (name, origin) in zip(nodes, hints, named):
            module = scope if weight_module is None else weight_module
            # a weight module's source line is the node's only when the node runs in that module
            meta = n.node.meta
            source = self._source_line(meta) if meta and scope is not None and scope == module else None
            result.append((name, origin, source, module))
        return result

    def _definitions(self, nodes: list[_LayerNode], paths: list[str | None]) -> list:
        """Construction lines of the layers (torch exports only; see :mod:`.construction_onnx`)."""
        if self.loaded.model.producer_name != "pytorch":
            return [None] * len(nodes)
        metas = [n.node.meta for n in nodes]
        found, notes = onnx_definitions(metas, paths, [n.op for n in nodes])
        self.graph.graph["notes"].extend(notes)
        return found

    # -- building -------------------------------------------------------------------------

    def build(self) -> Graph:
        model = self.loaded.model
        g = model.graph
        inits = self.loaded.initializer_shapes
        fields = self.loaded.nodes
        self.producer_names: list[str] = []
        channels_last = self._channels_last_inputs(g, inits, fields)
        for value in g.input:
            if value.name in inits:
                continue
            shape = self.loaded.shapes.get(value.name)
            transposed = channels_last.get(value.name)
            if transposed:
                shape = self.loaded.shapes[transposed[0]]
                self.graph.graph["notes"].append(
                    f"input '{value.name}' is channels-last ({format_dims(self.loaded.shapes[value.name])}); "
                    f"layers are analysed from its transpose to channels-first ({format_dims(shape)})")
                self.producer.update((t, (value.name, 0)) for t in transposed)
            self.graph.add_node(value.name, layer=Layer(
                name=value.name, op=Op.INPUT, source_op="input", output_shape=shape, name_origin="node"))
            self.producer[value.name] = (value.name, 0)
            self.producer_names.append(value.name)
            self.graph.graph["inputs"].append(value.name)

        constants = self.loaded.constant_names
        #: initializers, laid out anew (a Caffe Scale layer's [C] tensor unsqueezed to [C, 1, 1]) or
        #: written as the ConstantOfShape of a stored shape (a stripped weight): learned tensors,
        #: counted whether shape folding turned them into initializers or not
        self.stored = set(inits)
        for node in fields:
            inputs = node.input
            if node.op_type in _RELAYOUTS and node.domain in STANDARD_DOMAINS and inputs \
                    and inputs[0] in self.stored and constants.issuperset(i for i in inputs[1:] if i):
                self.stored.update(o for o in node.output if o)
        layer_nodes: list[_LayerNode] = []
        aliases: dict[str, str] = {}
        readers = Counter(chain.from_iterable(node.input for node in fields))
        readers.update(value.name for value in g.output)
        sole = {}  # alias -> whether every tensor from the aliased one to it has a single reader
        dense: dict[str, int] = {}  # output of a MatMul by a constant matrix -> its output width
        for read in fields:
            op_type, domain, inputs, outputs = read.op_type, read.domain, read.input, read.output
            data_inputs = [i for i in inputs if i and i not in constants]
            if not data_inputs or op_type in ("Shape", "Size", "Constant"):
                continue  # data-independent: shape arithmetic or constants
            if op_type == "Transpose" and inputs[0] in channels_last:
                continue  # the input's layout change: the input layer stands for it
            if op_type in _PASS_THROUGH and domain in STANDARD_DOMAINS:
                aliases[outputs[0]] = aliases.get(inputs[0], inputs[0])
                sole[outputs[0]] = readers[inputs[0]] == 1 and sole.get(inputs[0], True)
                continue
            if op_type == "MatMul" and domain in STANDARD_DOMAINS and len(inputs) == 2 and inputs[1] in constants:
                weight = self.loaded.shapes.get(inputs[1])
                if weight and len(weight) == 2:
                    dense[outputs[0]] = weight[1]
            if op_type == "Add" and domain in STANDARD_DOMAINS and len(data_inputs) == 1 and len(inputs) == 2:
                product = aliases.get(data_inputs[0], data_inputs[0])
                bias = inputs[1] if inputs[0] == data_inputs[0] else inputs[0]
                if product in dense and readers[data_inputs[0]] == 1 and sole.get(data_inputs[0], True) \
                        and readers[product] == 1 and self.loaded.shapes.get(bias) == (dense[product],):
                    # the bias of a dense layer exported as MatMul + Add: one layer, as the module was
                    aliases[outputs[0]] = product
                    self.dense_bias[product] = bias
                    continue
            try:
                node = _node(read)
            except (ValueError, TypeError) as exc:
                raise ModelLoadError(self.source, f"node '{read.name or op_type}' ({op_type}) has unreadable "
                                                  f"attributes: {exc}") from None
            layer_nodes.append(_LayerNode(node, self._op(node), data_inputs))

        names = self._names(layer_nodes)
        definitions = self._definitions(layer_nodes, [path for *_, path in names])
        nodes: list[tuple[str, dict]] = []
        edges: list[tuple[str, str, dict]] = []
        for n, (name, origin, source, _), defined in zip(layer_nodes, names, definitions):
            nodes.append((name, {"layer": self._layer(n, name, origin, source, aliases, defined)}))
            edges.extend(self._edges(n, name, aliases))
        outputs = self.graph.graph["outputs"]
        for value in g.output:
            src = self.producer.get(aliases.get(value.name, value.name))
            if src is not None and src[0] not in outputs:
                outputs.append(src[0])
        groups = recurrent_groups([name for name, *_ in names], [path for *_, path in names],
                                  [n.op for n in layer_nodes], [n.node.meta for n in layer_nodes])
        for group in groups.values():  # recurrent modules written as per-step operations
            if not reroll(group, self.graph, nodes, edges, outputs):
                self.graph.graph["notes"].append(decomposed_note(group))
        self.graph.add_nodes_and_edges(nodes, edges)
        return nx.freeze(self.graph)

    def _channels_last_inputs(self, g: onnx.GraphProto, inits: Container[str],
                              nodes: list[NodeFields]) -> dict[str, list[str]]:
        """Inputs read only through Transposes from channels-last to channels-first (NHWC -> NCHW,
        as tf2onnx writes them): input name -> those Transposes' outputs."""
        graph_inputs = {value.name for value in g.input}
        readers: dict[str, list[NodeFields]] = defaultdict(list)
        for node in nodes:
            for name in graph_inputs.intersection(node.input):
                readers[name].append(node)
        outputs = {o.name for o in g.output}
        found = {}
        for value in g.input:
            shape = self.loaded.shapes.get(value.name)
            nodes = readers.get(value.name)
            if value.name in inits or value.name in outputs or not nodes or not shape or len(shape) < 3:
                continue
            to_first = [0, len(shape) - 1, *range(1, len(shape) - 1)]
            if all(n.op_type == "Transpose" and n.domain in STANDARD_DOMAINS and len(n.input) == 1
                   and _attrs(n).get("perm") == to_first and self.loaded.shapes.get(n.output[0])
                   for n in nodes):
                found[value.name] = [n.output[0] for n in nodes]
        return found

    def _layer(self, n: _LayerNode, name: str, origin: str, source: Source | None,
               aliases: dict[str, str], defined: Definition | None = None) -> Layer:
        node, op = n.node, n.op
        shapes = self.loaded.shapes
        in_shapes = tuple([shapes.get(aliases.get(i, i)) for i in n.data_inputs])
        out_shape = shapes.get(node.output[0]) if node.output else None
        if op is Op.RECURRENT and not node.output[0]:  # only the last hidden state is used
            out_shape = next((shapes.get(o) for o in node.output if o), None)
        source_op = qualified_op(node.domain, node.op_type)
        if node.output:
            source_op = self.loaded.float_view.source_ops.get(node.output[0], source_op)
        fields = {"name": name, "op": op, "source_op": source_op, "output_shape": out_shape,
                  "input_shapes": in_shapes, "name_origin": origin, "source": source,
                  "param_shapes": self._param_shapes(node), "comment": _comment(node),
                  "extra": {"onnx_node": node.name}}
        if defined is not None and defined.chain:
            fields.update(defined_at=defined.defined_at, construction=defined.chain)
        try:
            if op in _WITH_FIELDS or node.op_type == "Transpose":
                fields.update(self._normalize(node, op, in_shapes, out_shape))
        except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
            raise ModelLoadError(self.source, f"node '{node.name or node.op_type}' ({node.op_type}) "
                                              f"has missing or invalid attributes: {exc}") from None
        if op is Op.OTHER:
            unsupported = self.graph.graph["unsupported_ops"]
            unsupported[fields["source_op"]] += 1
            _count_subgraph_ops(subgraphs(node), node.op_type, unsupported)
        return Layer(**fields)

    def _edges(self, n: _LayerNode, name: str, aliases: dict[str, str]) -> list[tuple[str, str, dict]]:
        """Edges into layer ``name`` (one per producer, at its first input position); records its outputs."""
        edges = []
        seen = set()
        for index, raw in enumerate(n.data_inputs):
            value = aliases.get(raw, raw)
            src = self.producer.get(value)
            if src is None:
                raise ModelLoadError(self.source, f"node '{n.node.name or n.node.op_type}' reads '{value}', "
                                                  "which nothing produces")
            if src[0] not in seen:
                seen.add(src[0])
                edges.append((src[0], name, {"index": index, "output": src[1], "tensor": value}))
        for position, out in enumerate(n.node.output):
            if out:
                self.producer[out] = (name, position)
        return edges

    def _param_shapes(self, node: _Node) -> tuple[tuple[int, ...], ...]:
        """Learned tensors used by this node (counted per use), with those its op has no input for:
        the bias of a ``DynamicQuantizeMatMul``, or of a MatMul that the next Add adds."""
        extra = ()
        if node.output:
            extra = self.loaded.float_view.params.get(node.output[0], ())
            if node.output[0] in self.dense_bias:
                extra += (self.dense_bias[node.output[0]],)
        if not extra:
            return self._input_param_shapes(node)
        shapes = self.loaded.shapes
        return self._input_param_shapes(node) + tuple(shapes[i] for i in extra if shapes.get(i) is not None)

    def _input_param_shapes(self, node: _Node) -> tuple[tuple[int, ...], ...]:
        inits = self.loaded.initializer_shapes
        positions = _PARAM_INPUTS.get(node.op_type)
        if positions is None:
            if node.op_type in _ELEMENTWISE:  # e.g. a layer-scale factor; scalars are not parameters
                shapes = self.loaded.shapes
                return tuple(shapes[i] for i in node.input
                             if i in self.stored and shapes.get(i) is not None and math.prod(shapes[i]) > 1)
            return ()
        found = []
        for p in positions:
            if p < len(node.input) and node.input[p]:
                name = node.input[p]
                shape = inits.get(name) or (self.loaded.shapes.get(name) if name in self.loaded.constant_names else None)
                if shape is not None and name in self.loaded.constant_names:
                    found.append(tuple(shape))
        return tuple(found)

    # -- op mapping -----------------------------------------------------------------------

    def _op(self, node: _Node) -> Op:
        t = node.op_type
        if node.domain not in STANDARD_DOMAINS:
            return Op.OTHER
        plain = _OP_CLASSES.get(t)
        if plain is not None:
            return plain
        if t in _REDUCTIONS:
            kind = self._reduction_kind(node)
            if kind is Op.GLOBAL_POOL and t in ("ReduceMean", "ReduceMax", "ReduceSum", "ReduceL2"):
                return Op.GLOBAL_POOL
            if kind is Op.NORM:
                return Op.NORM  # statistics over channels or features (a decomposed LayerNorm, a softmax)
        if t == "Einsum":
            return Op.MATMUL if self._einsum_k(node) is not None else Op.OTHER
        if t in ("Gemm", "MatMul"):
            weights = [i for i in node.input[:2] if i in self.loaded.constant_names]
            return Op.LINEAR if weights else Op.MATMUL
        if t == "Gather" and node.input[0] not in self.loaded.constant_names and self._constant_args(node, 1):
            return Op.RESHAPE  # picks entries at fixed indices (a state's h and c): moves data, computes nothing
        if t == "Pad":
            return Op.PAD if self._constant_args(node, 1) else Op.OTHER
        if t == "Slice":
            return Op.SLICE if self._constant_args(node, 1, 2, 3, 4) else Op.OTHER
        return Op.OTHER

    def _constant_args(self, node: _Node, *positions: int) -> bool:
        """Whether the inputs at ``positions`` (those present) have known constant values."""
        return all(node.input[p] in self.loaded.constants for p in positions
                   if p < len(node.input) and node.input[p])

    def _einsum_k(self, node: _Node) -> int | None:
        equation = _as_str(node.attrs.get("equation", ""))
        return einsum_contraction(equation, [self.loaded.shapes.get(i) for i in node.input])

    def _reduced_axes(self, node: _Node, rank: int) -> list[int] | None:
        """Axes a Reduce* node reduces (all when none are given), ``None`` if not constant."""
        axes = node.attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = self.loaded.constants.get(node.input[1])
            if value is None:
                return None
            axes = [int(a) for a in np.ravel(value)]
        if not axes:
            return [] if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
        return [int(a) % rank for a in axes]

    def _reduction_kind(self, node: _Node) -> Op | None:
        """:func:`~archlint.graph.reduction_op` of a Reduce* node; ``None`` if its shape or axes are unknown."""
        shape = self.loaded.shapes.get(node.input[0])
        if shape is None:
            return None
        axes = self._reduced_axes(node, len(shape))
        return None if axes is None else reduction_op(len(shape), axes)

    def _normalize(self, node: _Node, op: Op, in_shapes, out_shape) -> dict:
        """The fields of a layer with fields of its own (``_WITH_FIELDS``, and Transpose's perm)."""
        a = node.attrs
        x = in_shapes[0] if in_shapes else None
        if op in (Op.CONV, Op.CONV_TRANSPOSE):
            w = self.loaded.shapes.get(node.input[1])
            if w is None or len(w) < 3:
                raise ValueError(f"weight '{node.input[1]}' has no known shape")
            n = len(w) - 2
            kernel = tuple(map(int, a.get("kernel_shape", w[2:])))
            if kernel != w[2:]:
                raise ValueError(f"kernel_shape {list(kernel)} does not match the weight's kernel {list(w[2:])}")
            groups = int(a.get("group", 1))
            if groups < 1:
                raise ValueError(f"group must be >= 1, got {groups}")
            if op is Op.CONV:
                cin, cout = int(w[1]) * groups, int(w[0])
            else:
                cin, cout = int(w[0]), int(w[1]) * groups
            stride, dil = _ints(a.get("strides"), n, 1), _ints(a.get("dilations"), n, 1)
            begin, end = self._pads(a, n, x, kernel, stride, dil, transpose=op is Op.CONV_TRANSPOSE)
            return dict(kernel=kernel, stride=stride, dilation=dil, pads_begin=begin, pads_end=end,
                        groups=groups, in_channels=cin, out_channels=cout)
        if op in (Op.MAX_POOL, Op.AVG_POOL):
            kernel = tuple(map(int, a["kernel_shape"]))
            n = len(kernel)
            stride, dil = _ints(a.get("strides"), n, 1), _ints(a.get("dilations"), n, 1)
            begin, end = self._pads(a, n, x, kernel, stride, dil)
            ch = x[1] if x and len(x) > 1 else None
            return dict(kernel=kernel, stride=stride, dilation=dil, pads_begin=begin, pads_end=end,
                        ceil_mode=bool(a.get("ceil_mode", 0)), in_channels=ch, out_channels=ch)
        if op is Op.GLOBAL_POOL:
            ch = x[1] if x and len(x) > 1 else None
            return dict(in_channels=ch, out_channels=ch)
        if op in (Op.LINEAR, Op.MATMUL):
            k = self._contracted_dim(node, a, in_shapes)
            n_out = out_shape[-1] if out_shape else None
            return dict(in_channels=k, out_channels=n_out)
        if op is Op.RECURRENT:
            return self._recurrent_layer(node, a, x)
        if op is Op.RESIZE:
            if x and out_shape and len(x) == len(out_shape) and len(x) >= 3:
                scales = tuple(o / i for o, i in zip(out_shape[2:], x[2:]))
            else:
                scales = ()
            return dict(scales=scales, mode=_as_str(a.get("mode", "nearest")),
                        coordinate_mode=_as_str(a.get("coordinate_transformation_mode", "half_pixel")
                                                if node.op_type == "Resize" else "asymmetric"),
                        rounding=_as_str(a.get("nearest_mode", "round_prefer_floor")
                                         if node.op_type == "Resize" else "floor"))
        if op is Op.PAD:
            return self._pad_layer(node, a, x)
        if node.op_type == "Transpose" and x:
            return dict(perm=tuple(int(p) for p in a.get("perm", reversed(range(len(x))))))
        if op is Op.SLICE and node.op_type == "Slice":
            return self._slice_layer(node, a, x)
        return {}

    def _recurrent_layer(self, node: _Node, a: dict, x) -> dict:
        """LSTM/GRU/RNN: input size from the sequence, hidden size from the attribute (or R)."""
        if not x or len(x) != 3:
            raise ValueError(f"input sequence has shape {x}, expected rank 3 (steps, batch, features)")
        directions = 2 if _as_str(a.get("direction", "forward")) == "bidirectional" else 1
        hidden = a.get("hidden_size")
        if hidden is None:
            r = self.loaded.shapes.get(node.input[2]) if len(node.input) > 2 else None
            if not r or len(r) != 3:
                raise ValueError("hidden_size is missing and the recurrence weight's shape is unknown")
            hidden = r[2]
        return dict(in_channels=int(x[2]), out_channels=int(hidden), gates=_GATES[node.op_type],
                    directions=directions)

    def _contracted_dim(self, node, a, in_shapes) -> int | None:
        if node.op_type == "Einsum":
            return self._einsum_k(node)
        shapes = self.loaded.shapes
        first = shapes.get(node.input[0])
        if first is None or not first:
            return None
        if node.op_type == "Gemm":
            return int(first[0] if a.get("transA", 0) else first[-1])
        return int(first[-1])

    def _pads(self, a, n, x, kernel, stride, dil, transpose: bool = False):
        auto = _as_str(a.get("auto_pad", "NOTSET"))
        if auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise ValueError(f"unknown auto_pad {auto!r}")
        if auto in ("SAME_UPPER", "SAME_LOWER") and not transpose:
            if not x or len(x) != n + 2:
                raise ValueError("auto_pad SAME needs a known input shape")
            begin, end = [], []
            for size, k, s, d in zip(x[2:], kernel, stride, dil):
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                small, large = total // 2, total - total // 2
                begin.append(small if auto == "SAME_UPPER" else large)
                end.append(large if auto == "SAME_UPPER" else small)
            return tuple(begin), tuple(end)
        if auto == "VALID" or "pads" not in a:
            return (0,) * n, (0,) * n
        pads = tuple(map(int, a["pads"]))
        if len(pads) != 2 * n:
            raise ValueError(f"pads has {len(pads)} values, expected {2 * n}")
        return pads[:n], pads[n:]

    def _pad_layer(self, node, a, x) -> dict:
        if not x or len(x) < 2:
            return {}
        rank = len(x)
        pads = a.get("pads")
        if pads is None and len(node.input) > 1:
            value = self.loaded.constants.get(node.input[1])
            pads = None if value is None else [int(p) for p in np.ravel(value)]
        if pads is None:
            raise ValueError("pad amounts are not constant")
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            value = self.loaded.constants.get(node.input[3])
            if value is None:
                raise ValueError("pad axes are not constant")
            axes = [int(v) % rank for v in np.ravel(value)]
        k = len(axes)
        begin, end = [0] * rank, [0] * rank
        for i, axis in enumerate(axes):
            begin[axis], end[axis] = int(pads[i]), int(pads[i + k])
        first = 2 if rank > 2 else 1  # a (batch, length) signal: no channel axis, its length is spatial
        if rank == 2 and (begin[0] or end[0]):
            return {}
        return dict(pads_begin=tuple(begin[first:]), pads_end=tuple(end[first:]),
                    mode=_as_str(a.get("mode", "constant")))

    def _slice_layer(self, node, a, x) -> dict:
        if not x or len(x) < 3:
            return {}
        rank = len(x)
        if "starts" in a:  # opset < 10
            starts = list(a["starts"])
            axes, steps = list(a.get("axes", range(len(starts)))), [1] * len(starts)
        else:
            vals = [self.loaded.constants.get(i) if i else None for i in list(node.input[1:5]) + [""] * 4]
            if vals[0] is None or vals[1] is None:
                raise ValueError("slice bounds are not constant")
            starts = [int(v) for v in np.ravel(vals[0])]
            axes = [int(v) for v in np.ravel(vals[2])] if vals[2] is not None else list(range(len(starts)))
            steps = [int(v) for v in np.ravel(vals[3])] if vals[3] is not None else [1] * len(starts)
        first, step = [0] * rank, [1] * rank
        for s, axis, st in zip(starts, axes, steps):
            axis %= rank
            if axis < 2:
                continue  # batch and channels (or a sequence's steps): not a spatial slice
            size = x[axis]
            if st <= 0:
                raise ValueError("negative slice steps are not supported on feature maps")
            s = s + size if s < 0 else s
            first[axis], step[axis] = min(max(s, 0), size), st
        return dict(starts=tuple(first[2:]), stride=tuple(step[2:]))


def _count_subgraph_ops(graphs: list[onnx.GraphProto], parent: str, counts: Counter) -> None:
    """Count the ops inside a not-understood node's subgraphs (a ``Loop`` body) as ``Op (in Parent)``."""
    for graph in graphs:
        for inner in graph.node:
            counts[f"{qualified_op(inner.domain, inner.op_type)} (in {parent})"] += 1
            _count_subgraph_ops(subgraphs(inner), inner.op_type, counts)


def _comment(node: _Node) -> str:
    """Author text that may carry an inline suppression: doc_string and ``archlint`` metadata."""
    if not node.doc_string and not node.meta:
        return ""
    texts = (node.doc_string, node.meta.get("archlint", ""))
    return "\n".join(t for t in texts if t and "archlint" in t)


def _ints(value, n: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * n
    out = tuple(map(int, value))
    if len(out) != n:
        raise ValueError(f"expected {n} values, got {list(out)}")
    if min(out, default=1) < 1:
        raise ValueError(f"values must be >= 1, got {list(out)}")
    return out
