"""PyTorch frontend, conversion: a traced fx graph or a ``torch.export`` program -> archlint :class:`~archlint.graph.Graph`.

Every node of the graph, with its meta-tensor value, becomes a layer through the op tables
of :mod:`.torch_ops`; calls without a table entry (attention) are opened into ATen operators
(:mod:`.torch_open`); regions that ``torch.export`` keeps as a subgraph (``torch.autocast``,
``torch.no_grad``) are inlined.

Naming
    The ONNX frontend's conventions (:mod:`.naming`), so both paths give the same layer
    names. Inputs keep the argument names of ``forward``.

BatchNorm
    Kept as a layer here; the canonical pass (:mod:`archlint.canonical`) folds one that
    directly follows a conv into it, as both ONNX exporters do. Its parameters (scale and
    shift) are then counted on the convolution. An ONNX file instead stores one merged bias,
    so a conv without bias followed by BatchNorm has ``C`` fewer parameters there.

Parameters
    Each layer lists the parameters it uses (per use). Every use is recorded with the
    tensor's identity, so a module called several times or weights tied between modules
    are known: the graph attribute ``shared_params`` holds the elements counted beyond each
    tensor's first use, and :func:`archlint.analyses.macs.total_params` subtracts them, so
    the model's total equals ``sum(p.numel() for p in module.parameters())``.

Constants
    A conv, dense layer or matrix product whose operands do not depend on the model's input
    (a conv applied to ``torch.zeros`` in ``forward``) is a layer without input edges: the
    model computes it, so its MACs count; it has no receptive field. Other arithmetic on
    parameters and constants (a class token expanded, a bias table indexed) is bookkeeping:
    the parameters it reads are counted on the first layer that consumes the result.

Source lines
    Each layer carries the innermost Python frame outside torch's own package: recorded
    while fx traces (cheaply, from the live frame), or parsed from ``node.meta["stack_trace"]``.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import ShapeError
from ..graph import Graph, Layer, Op, Source
from .naming import NameHint, layer_names
from .sources import local_source, source_from_trace
from .torch_open import open_call
from .torch_ops import (ALIASES, IGNORED_MODULE_TYPES, OpSpecs, argument, flatten_args, function_name,
                        recurrent_call_layers, recurrent_layers, shape_of, target_name)
from .torch_quiet import quiet_torch
from .torch_trace import TORCH_DIR, meta_values

__all__ = ["exported_program_graph", "module_graph", "traced_graph"]

#: Functions whose result depends on their tensor argument's shape, dtype or device only.
_SHAPE_ONLY = frozenset({"new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "zeros_like",
                         "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like"})

#: Higher-order operators of ``torch.export`` programs that run their subgraph (the ``get_attr``
#: argument) once on the operands that follow it: ``torch.autocast`` and ``torch.no_grad`` /
#: ``torch.enable_grad`` regions of ``forward``. Their operators are inlined as if written there.
_REGIONS = frozenset({"wrap_with_autocast", "wrap_with_set_grad_enabled"})

#: Functions whose multiply-accumulates count (conv, dense, matrix products).
_PRODUCTS = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                       "conv_transpose2d", "conv_transpose3d", "linear", "matmul", "mm", "bmm", "addmm",
                       "baddbmm", "einsum", "bilinear"})


def module_graph(gm: fx.GraphModule, values: dict, source: str) -> Graph:
    """Layer graph of an fx-traced module whose nodes' meta-tensor ``values`` are known."""
    return _Converter(gm.graph, values, source, module=gm).build()


def traced_graph(gm: fx.GraphModule, inputs: tuple, source: str) -> tuple[Graph, list[str | None]]:
    """Layer graph of an fx-traced module run on meta ``inputs``, and the layer name of each
    flattened output (``None`` where no layer produced it)."""
    converter = _Converter(gm.graph, meta_values(gm, inputs), source, module=gm)
    graph = converter.build()
    return graph, converter.output_names


def exported_program_graph(program, source: str) -> Graph:
    """Layer graph of a ``torch.export.ExportedProgram`` (ATen operators with shapes in node meta)."""
    from torch.export.graph_signature import InputKind

    roles: dict[str, tuple[str, str]] = {}
    for spec in program.graph_signature.input_specs:
        name = getattr(spec.arg, "name", None)
        if name is None:
            continue
        if spec.kind == InputKind.USER_INPUT:
            roles[name] = ("input", name)
        elif spec.kind == InputKind.PARAMETER:
            roles[name] = ("param", spec.target)
        else:
            roles[name] = ("const", spec.target or name)
    values = {}
    for node in program.graph.nodes:
        val = node.meta.get("val")
        if val is not None:
            values[node] = val
    with quiet_torch():
        return _Converter(program.graph, values, source, roles=roles, owner=program.graph_module).build()


@dataclass(frozen=True)
class _Use:
    """One use of a parameter tensor: its identity, shape and qualified name."""

    key: Any
    shape: tuple[int, ...]
    fqn: str


@dataclass
class _Entry:
    """One future layer."""

    node: fx.Node
    op: Op
    otype: str
    source_op: str
    fields: dict
    inputs: list  # [(producer key, output index)]
    params: list  # parameter shapes used
    scope: str | None
    weight_module: str | None
    source: Source | None
    out_shape: tuple[int, ...] | None
    in_shapes: tuple
    key: str = ""
    name: str = ""
    origin: str = ""
    extra: dict = field(default_factory=dict)


class _Converter:
    """Builds the layer graph from an fx graph (fx trace or torch.export program) and its values."""

    def __init__(self, graph: fx.Graph, values: dict, source: str, module: nn.Module | None = None,
                 roles: dict[str, tuple[str, str]] | None = None, owner: nn.Module | None = None) -> None:
        self.fx = graph
        self.values = values
        self.source = source
        self.module = module
        self.roles = roles  # export: placeholder name -> (role, target)
        self.producer: dict[fx.Node, tuple[str, int]] = {}
        #: parameters reaching a node only through weight-side arithmetic (a class token
        #: expanded, a bias table indexed): counted on the first layer that consumes them
        self.carried: dict[fx.Node, list[_Use]] = {}
        self.entries: dict[str, _Entry] = {}
        self.inputs: list[tuple[str, tuple[int, ...] | None]] = []
        self.outputs: list[str] = []
        self.output_nodes: list = []
        self.output_names: list[str | None] = []
        self.unsupported: Counter = Counter()
        self.ops = OpSpecs(values, self.producer)
        #: every use of a parameter by a layer, to count each parameter tensor once in the total
        self.uses: list[_Use] = []
        #: placeholders of opened calls (see torch_open) that receive a parameter: (key, FQN)
        self.opened_params: dict[fx.Node, tuple[Any, str]] = {}
        #: opened call -> the producers of its flattened outputs
        self.opened_outputs: dict[fx.Node, list[tuple[str, int] | None]] = {}
        #: ATen graphs of opened calls by what decides them (torch_open.open_call's cache)
        self.opened_graphs: dict = {}
        #: while an opened call's nodes are converted: (scope, source, key prefix) of the call
        self.within: tuple[str, Source | None, str] | None = None
        #: layers computed from constants alone (no model input upstream)
        self.constant_layers = 0
        #: the module holding the subgraphs of higher-order operators (an exported program's
        #: graph module), and the key prefix of the region being inlined ("" outside any)
        self.owner = owner
        self.region = ""

    # -- node roles ----------------------------------------------------------------------

    def _param_target(self, node) -> str | None:
        """FQN of the parameter a node reads, if it is one."""
        if not isinstance(node, fx.Node):
            return None
        if node in self.opened_params:
            return self.opened_params[node][1]
        if self.roles is not None:
            role = self.roles.get(node.name)
            return role[1] if role and role[0] == "param" else None
        if node.op == "get_attr":
            obj = self.module
            try:
                for part in node.target.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                return None
            return node.target if isinstance(obj, nn.Parameter) else None
        return None

    def _param_use(self, node: fx.Node) -> _Use:
        """The parameter read by ``node`` (a node :meth:`_param_target` names), keyed by identity."""
        fqn = self._param_target(node)
        shape = tuple(self.values[node].shape) if node in self.values else ()
        if node in self.opened_params:
            key = self.opened_params[node][0]
        elif self.roles is not None:
            key = fqn
        else:
            obj = self.module
            for part in fqn.split("."):
                obj = getattr(obj, part)
            key = id(obj)
        return _Use(key, shape, fqn)

    def _scope_stack(self, node: fx.Node) -> list[str]:
        stack = node.meta.get("nn_module_stack") or {}
        return [v[0] if isinstance(v, tuple) else str(v) for v in stack.values()]

    def _source(self, node: fx.Node) -> Source | None:
        recorded = node.meta.get("archlint_source")
        if recorded:
            return local_source(*recorded)
        return source_from_trace(node.meta.get("stack_trace") or "", TORCH_DIR)

    # -- building ------------------------------------------------------------------------

    def build(self) -> Graph:
        for node in self.fx.nodes:
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "output":
                self._outputs(node)
            elif node.op in ("call_module", "call_function", "call_method"):
                self._call(node)
        self._name()
        return self._graph()

    def _placeholder(self, node: fx.Node) -> None:
        if self.roles is not None and self.roles.get(node.name, ("input",))[0] != "input":
            return
        value = self.values.get(node)
        if not isinstance(value, torch.Tensor):
            return
        shape = shape_of(value)
        if shape is None:
            raise ShapeError(self.source, f"input '{node.name}' has symbolic (dynamic) dimensions; "
                                          "archlint needs static shapes")
        key = node.target if isinstance(node.target, str) and self.roles is None else node.name
        key = key.lstrip("*")
        self.inputs.append((key, shape))
        self.producer[node] = (key, 0)

    def _outputs(self, node: fx.Node) -> None:
        self.output_nodes = list(flatten_args(node.args))
        for arg in flatten_args(node.args):
            if isinstance(arg, fx.Node) and arg in self.producer:
                key = self.producer[arg][0]
                if key not in self.outputs:
                    self.outputs.append(key)

    def _data_inputs(self, node: fx.Node) -> list[fx.Node]:
        found = []
        for arg in flatten_args((node.args, node.kwargs)):
            if isinstance(arg, fx.Node) and (arg in self.producer or arg in self.opened_outputs) and arg not in found:
                found.append(arg)
        return found

    def _carried(self, node: fx.Node) -> list[_Use]:
        """Parameters arriving at ``node`` through arguments that are not activations."""
        found = []
        for arg in flatten_args((node.args, node.kwargs)):
            if isinstance(arg, fx.Node) and arg not in self.producer:
                found.extend(self.carried.pop(arg, ()))
        return found

    def _own_params(self, node: fx.Node) -> list[_Use]:
        """Parameters ``node`` reads directly: a leaf module's, or parameter arguments."""
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            names = {id(p): f"{node.target}.{n}" for n, p in module.named_parameters()}
            return [_Use(id(p), tuple(p.shape), names[id(p)]) for p in module.parameters()]
        return [self._param_use(a) for a in flatten_args((node.args, node.kwargs)) if self._param_target(a)]

    def _call(self, node: fx.Node) -> None:
        if node.op == "call_function" and self.owner is not None and target_name(node) in _REGIONS \
                and self._inline(node):
            return
        data = self._data_inputs(node)
        value = self.values.get(node)
        is_tensor = isinstance(value, torch.Tensor)
        # a module may return (tensor, None), e.g. nn.MultiheadAttention without weights
        is_multi = isinstance(value, (tuple, list)) and isinstance(value[0] if value else None, torch.Tensor)
        if data and function_name(node) in _SHAPE_ONLY and node.op != "call_module":
            data = []  # a constant shaped like an activation (a mask built with x.new_zeros)
        if not data and not (is_tensor and self._computes_on_constants(node)):
            # constants, shape arithmetic, or arithmetic on parameters alone
            carried = self._carried(node) + self._own_params(node)
            if carried:
                self.carried[node] = carried
            return
        if node.op == "call_function" and node.target is operator.getitem:
            source = node.args[0]
            if source in self.opened_outputs and isinstance(node.args[1], int):
                outputs = self.opened_outputs[source]
                if node.args[1] < len(outputs) and outputs[node.args[1]] is not None:
                    self.producer[node] = outputs[node.args[1]]
                return
            if isinstance(source, fx.Node) and isinstance(self.values.get(source), (tuple, list)):
                if source in self.producer and isinstance(node.args[1], int):
                    key, _ = self.producer[source]
                    self.producer[node] = (key, node.args[1])
                return
        if not (is_tensor or is_multi):
            return  # sizes, dims: shape arithmetic
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            if isinstance(module, IGNORED_MODULE_TYPES):
                self.producer[node] = self.producer[data[0]]
                return
            stacked = recurrent_layers(module, self.ops.value_shape(data[0])) if data else None
            if stacked is not None:
                params = dict(module.named_parameters())
                self._recurrent(node, [(otype, fields, [_Use(id(params[n]), tuple(params[n].shape),
                                                             f"{node.target}.{n}") for n in names])
                                       for otype, fields, names in stacked], data[0], node.target)
                return
            spec = self.ops.module_spec(node, module, data)
            weight_module = None
        else:
            stacked = recurrent_call_layers(node, self.values) if node.args and node.args[0] in self.producer \
                else None
            if stacked is not None and all(self._param_target(p) for _, _, params in stacked for p in params):
                stack = self._scope_stack(node)
                self._recurrent(node, [(otype, fields, [self._param_use(p) for p in params])
                                       for otype, fields, params in stacked], node.args[0], stack[-1] if stack else "")
                return
            name = function_name(node)
            if name in ALIASES and data and node.args and node.args[0] is data[0]:
                self.producer[node] = self.producer[data[0]]
                return
            spec = self.ops.function_spec(node, name, data)
            weight_module = None
            if spec[0] in (Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR):
                weight = argument(node, 1, "weight")
                target = self._param_target(weight)
                if target and target.endswith(".weight") and weight not in self.opened_params:
                    weight_module = target[: -len(".weight")]
        op, otype, fields = spec
        if self.within is None:
            stack = self._scope_stack(node)
            scope = node.target if node.op == "call_module" else (stack[-1] if stack else "")
            source, key = self._source(node), f"%{self.region}{node.name}"
        else:
            scope, source, prefix = self.within
            key = f"%{prefix}/{node.name}"
        if op is Op.OTHER and self.within is None and self._open(node, scope, source, key[1:]):
            return
        uses = self._own_params(node) + self._carried(node)
        self.uses.extend(uses)
        in_shapes = tuple(self.ops.value_shape(d) for d in data)
        if not data:  # a layer computed from constants: its operands' shapes, no input edges
            self.constant_layers += 1
            in_shapes = tuple(shape_of(self.values.get(a)) for a in flatten_args((node.args, node.kwargs))
                              if isinstance(a, fx.Node) and isinstance(self.values.get(a), torch.Tensor)
                              and not self._param_target(a))
        out_shape = shape_of(value) if is_tensor else shape_of(value[0])
        source_op = (type(self.module.get_submodule(node.target)).__name__ if node.op == "call_module"
                     else target_name(node))
        entry = _Entry(node, op, otype, source_op, fields, [self.producer[d] for d in data],
                       [u.shape for u in uses], scope, weight_module, source, out_shape, in_shapes, key=key)
        if op is Op.OTHER:
            self.unsupported[source_op] += 1
        self.entries[key] = entry
        self.producer[node] = (key, 0)

    def _recurrent(self, node: fx.Node, stacked: list[tuple[str, dict, list[_Use]]], sequence: fx.Node,
                   scope: str) -> None:
        """A recurrent module call (or its ATen operator in a ``torch.export`` program) as a chain
        of recurrent layers, one per stacked layer, each with the parameters of its own layer
        (see :func:`.torch_ops.recurrent_layers` and :func:`.torch_ops.recurrent_call_layers`)."""
        out_shape = shape_of(self.values[node][0])
        source, producer, in_shape = self._source(node), self.producer[sequence], self.ops.value_shape(sequence)
        for k, (otype, fields, uses) in enumerate(stacked):
            self.uses.extend(uses)
            key = f"%{node.name}" if k == len(stacked) - 1 else f"%{node.name}/{k}"
            self.entries[key] = _Entry(node, Op.RECURRENT, otype, otype, fields, [producer], [u.shape for u in uses],
                                       scope, None, source, out_shape, (in_shape,), key=key)
            producer, in_shape = (key, 0), out_shape
        self.producer[node] = producer

    def _computes_on_constants(self, node: fx.Node) -> bool:
        """A conv, dense layer or matrix product whose operands do not depend on the model's input
        (a conv applied to ``torch.zeros`` in ``forward``): the model computes it, so it is a layer."""
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            return isinstance(module, (nn.modules.conv._ConvNd, nn.Linear, nn.Bilinear))
        if node.op != "call_function":
            return False
        operands = [a for a in flatten_args((node.args, node.kwargs))
                    if isinstance(a, fx.Node) and isinstance(self.values.get(a), torch.Tensor)]
        # at least one operand computed (not a parameter read as is): weight-side arithmetic such
        # as a class token expanded stays parameter bookkeeping
        if all(self._param_target(a) for a in operands):
            return False
        return function_name(node) in _PRODUCTS

    def _open(self, node: fx.Node, scope: str, source: Source | None, prefix: str) -> bool:
        """Convert the ATen operators of a call the op tables do not know (see torch_open)."""
        opened = open_call(node, self.values, self.module, self.opened_graphs)
        if opened is None:
            return False
        self._bind(opened.graph, opened.stands_for)
        self.within = (scope, source, prefix)
        try:
            self._convert_calls(opened.graph)
        finally:
            self.within = None
        self._bind_outputs(node, opened.outputs)
        return True

    def _convert_calls(self, graph: fx.Graph) -> None:
        """Convert the operator calls of a subgraph whose inputs are bound, with its traced values."""
        for sub in graph.nodes:
            if sub.op == "call_function":
                self.values[sub] = sub.meta.get("val")
                self._call(sub)

    def _inline(self, node: fx.Node) -> bool:
        """A region of ``forward`` held in a subgraph (see ``_REGIONS``): its operators are
        converted like the program's own, with their own module scopes and source lines.
        ``False`` (nothing converted) when the call holds no subgraph."""
        at = next((i for i, a in enumerate(node.args) if isinstance(a, fx.Node) and a.op == "get_attr"), None)
        subgraph = self.owner.get_submodule(node.args[at].target) if at is not None else None
        if not isinstance(subgraph, fx.GraphModule):
            return False
        self._bind(subgraph.graph, list(node.args[at + 1:]))
        owner, region = self.owner, self.region
        self.owner, self.region = subgraph, f"{region}{node.name}/"
        try:
            self._convert_calls(subgraph.graph)
        finally:
            self.owner, self.region = owner, region
        output = next(n for n in subgraph.graph.nodes if n.op == "output")
        self._bind_outputs(node, [o if isinstance(o, fx.Node) else None for o in flatten_args(output.args)])
        return True

    def _bind(self, graph: fx.Graph, stands_for: list) -> None:
        """Give the placeholders of ``graph`` what they receive: a node of the graph being
        converted, or ``("param", tensor, qualified name)`` / ``("buffer", ...)``."""
        for sub in graph.nodes:  # a graph converted before: forget its last call
            for table in (self.producer, self.carried, self.opened_params, self.opened_outputs):
                table.pop(sub, None)
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        for placeholder, meaning in zip(placeholders, stands_for):
            self.values[placeholder] = placeholder.meta.get("val")
            if isinstance(meaning, fx.Node):
                if meaning in self.producer:
                    self.producer[placeholder] = self.producer[meaning]
                elif self._param_target(meaning):
                    use = self._param_use(meaning)
                    self.opened_params[placeholder] = (use.key, use.fqn)
                elif meaning in self.carried:
                    self.carried[placeholder] = self.carried.pop(meaning)
            elif isinstance(meaning, tuple) and meaning[0] == "param":
                self.opened_params[placeholder] = (id(meaning[1]), meaning[2])

    def _bind_outputs(self, node: fx.Node, outputs: list[fx.Node | None]) -> None:
        """The producers of a converted subgraph's ``outputs`` stand for the results of ``node``."""
        producers = [self.producer.get(o) if o is not None else None for o in outputs]
        self.opened_outputs[node] = producers
        if isinstance(self.values.get(node), torch.Tensor) and producers and producers[0] is not None:
            self.producer[node] = producers[0]

    def _name(self) -> None:
        entries = list(self.entries.values())
        hints = [NameHint(e.scope, e.otype, e.weight_module) for e in entries]
        for e, (name, origin) in zip(entries, layer_names(hints, reserved=[key for key, _ in self.inputs])):
            e.name, e.origin = name, origin

    def _graph(self) -> Graph:
        notes = []
        shared, reused = self._shared_params()
        if reused:
            listed = ", ".join(f"{name} x{count}" for name, count in reused[:5])
            more = f" and {len(reused) - 5} more" if len(reused) > 5 else ""
            notes.append(f"{len(reused)} module(s) or parameter(s) used more than once ({listed}{more}): each use "
                         f"counts their parameters on its layer, the total counts each parameter once "
                         f"({shared:,} fewer than the sum over layers)")
        if self.constant_layers:
            notes.append(f"{self.constant_layers} layer(s) computed from constants alone (their input does not "
                         "depend on the model's input): their MACs are counted, they have no receptive field")
        graph = Graph(model=self.source, format="torch", notes=notes, unsupported_ops=self.unsupported,
                      inputs=[], outputs=[], shared_params=shared)
        names: dict[str, str] = {}
        for key, shape in self.inputs:
            graph.add_node(key, layer=Layer(name=key, op=Op.INPUT, source_op="input", output_shape=shape,
                                            name_origin="node"))
            graph.graph["inputs"].append(key)
            names[key] = key
        for e in self.entries.values():
            names[e.key] = e.name
            in_shapes = tuple(self._input_shape(k, i) for k, i in e.inputs) or e.in_shapes
            graph.add_node(e.name, layer=Layer(
                name=e.name, op=e.op, source_op=e.source_op, output_shape=e.out_shape, input_shapes=in_shapes,
                param_shapes=tuple(e.params), name_origin=e.origin, source=e.source,
                extra={"torch_node": e.node.name, **e.extra}, **e.fields))
            for position, (key, index) in enumerate(e.inputs):
                src = names[key]
                if not graph.has_edge(src, e.name):
                    graph.add_edge(src, e.name, index=position, output=index)
        graph.graph["outputs"] = [names[k] for k in self.outputs if k in names]
        #: layer name per flattened output of the traced function (None where no layer made it)
        self.output_names = [names.get(self.producer[n][0]) if isinstance(n, fx.Node) and n in self.producer
                             else None for n in self.output_nodes]
        return graph

    def _shared_params(self) -> tuple[int, list[tuple[str, int]]]:
        """Elements of parameters counted on more than one layer beyond their first use, and the
        modules (or parameters) used more than once with their use counts, most used first."""
        counts: Counter = Counter()
        shared = 0
        for use in self.uses:
            if counts[use.key]:
                shared += math.prod(use.shape)
            counts[use.key] += 1
        owners: dict[str, int] = {}
        for use in self.uses:
            if counts[use.key] > 1:
                owner = use.fqn.rsplit(".", 1)[0] if use.fqn.endswith((".weight", ".bias")) else use.fqn
                owners[owner] = max(owners.get(owner, 0), counts[use.key])
        return shared, sorted(owners.items(), key=lambda item: (-item[1], item[0]))

    def _input_shape(self, key: str, index: int):
        if key in self.entries:
            entry = self.entries[key]
            value = self.values.get(entry.node)
            if isinstance(value, (tuple, list)):
                return shape_of(value[index]) if index < len(value) else None
            return entry.out_shape
        for name, shape in self.inputs:
            if name == key:
                return shape
        return None
