"""PyTorch frontend: an ``nn.Module`` or a ``torch.export`` program -> archlint :class:`~archlint.graph.Graph`.

This module imports torch; :func:`archlint.frontends.load_graph` imports it only when it is
given a torch object, a ``.pt2``/``.pt`` file or a ``pkg.module:factory`` reference.

Tracing
    Fast path: ``torch.fx`` symbolic tracing (standard ``torch.nn`` modules stay leaves),
    then every node is evaluated on ``meta`` tensors, so shapes are known without any
    real arithmetic and without touching the weights (leaf modules run on a copy whose
    parameters are meta tensors). Modules fx cannot trace (Python control flow on tensor
    values or shapes, ``isinstance`` on proxies...) fall back to ``torch.export.export``
    with ``strict=False`` on fake tensors; saved ``.pt2`` programs take the same route
    after loading. Both graphs go through one converter: fx leaf modules by type,
    functions and ATen operators by name (``F.conv2d`` and ``aten.conv2d`` share a table).

Naming (the ONNX frontend's conventions, so both paths give the same layer names)
    A conv or linear whose weight is the parameter ``P.weight`` is named ``P``. Otherwise
    a layer is named by the innermost module it runs in: the module path itself when that
    module has no submodules and all its layers have one op kind (``layer1.0.relu``), else
    ``path/OpType`` with the ONNX op type (``layer1.0/Add``; ``Add`` at the root). Repeats
    get ``_1``, ``_2``... in call order (``layer1.0.relu_1``). Inputs keep the argument
    names of ``forward``.

BatchNorm
    Both ONNX exporters fold a BatchNorm that directly follows a convolution into it; this
    frontend does the same, so layer names, layer counts, MACs, receptive fields and
    findings agree with the ONNX path. The folded BatchNorm's parameters (scale and shift)
    are counted on the convolution, so on this path total parameters equal
    ``sum(p.numel() for p in module.parameters())`` for models that use each parameter once
    (parameters are counted per use, as on the ONNX path). An ONNX file instead stores one
    merged bias, so a conv without bias followed by BatchNorm has ``C`` fewer parameters there.

Source lines
    Each layer carries the innermost Python frame outside torch's own package: recorded
    while fx traces (cheaply, from the live frame), or parsed from ``node.meta["stack_trace"]``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import operator
import os
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import ModelLoadError, ShapeError
from ..graph import Graph, Layer, Op, Source
from .einsum import einsum_contraction
from .naming import containers, unique_names
from .sources import local_source, source_from_trace

__all__ = ["torch_graph", "exported_program_graph", "quiet_torch"]

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_ARCHLINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

#: ONNX op type used in ``scope/OpType`` names, per canonical op (when no finer type is known).
_ONNX_TYPE = {Op.CONV: "Conv", Op.CONV_TRANSPOSE: "ConvTranspose", Op.MAX_POOL: "MaxPool",
              Op.AVG_POOL: "AveragePool", Op.GLOBAL_POOL: "GlobalAveragePool", Op.LINEAR: "Gemm",
              Op.MATMUL: "MatMul", Op.ADD: "Add", Op.MUL: "Mul", Op.CONCAT: "Concat",
              Op.ACTIVATION: "Relu", Op.NORM: "BatchNormalization", Op.RESHAPE: "Reshape",
              Op.FLATTEN: "Flatten", Op.RESIZE: "Resize", Op.PAD: "Pad", Op.SLICE: "Slice", Op.OTHER: "Other"}

_ACTIVATION_TYPES = {
    "relu": "Relu", "relu6": "Clip", "hardtanh": "Clip", "clamp": "Clip", "clip": "Clip",
    "clamp_min": "Relu", "leaky_relu": "LeakyRelu", "prelu": "PRelu", "elu": "Elu", "selu": "Selu",
    "celu": "Celu", "gelu": "Gelu", "silu": "Sigmoid", "mish": "Mish", "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
    "log_softmax": "LogSoftmax", "softplus": "Softplus", "softsign": "Softsign", "threshold": "Relu",
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "rsqrt": "Sqrt", "abs": "Abs", "neg": "Neg", "erf": "Erf",
    "floor": "Floor", "ceil": "Ceil", "round": "Round", "sign": "Sign", "reciprocal": "Reciprocal",
    "sin": "Sin", "cos": "Cos", "square": "Mul", "logsigmoid": "Sigmoid", "tanhshrink": "Tanh",
    "softmin": "Softmax", "rrelu": "LeakyRelu", "glu": "Sigmoid", "hardshrink": "Shrink",
    "softshrink": "Shrink",
}
_ADD_TYPES = {"add": "Add", "sub": "Sub", "rsub": "Sub", "iadd": "Add", "isub": "Sub", "radd": "Add"}
_MUL_TYPES = {"mul": "Mul", "imul": "Mul", "rmul": "Mul", "div": "Div", "truediv": "Div", "itruediv": "Div",
              "floordiv": "Div", "floor_divide": "Div", "true_divide": "Div", "pow": "Pow", "maximum": "Max",
              "minimum": "Min", "max": "Max", "min": "Min", "addcmul": "Mul", "rtruediv": "Div"}
_NORM_FUNCS = {"batch_norm", "group_norm", "layer_norm", "instance_norm", "local_response_norm",
               "normalize", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
               "native_batch_norm", "native_layer_norm", "native_group_norm", "rms_norm"}
_ALIASES = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
            "feature_dropout", "contiguous", "clone", "detach", "to", "float", "type", "type_as", "identity",
            "lift_fresh_copy", "alias", "requires_grad", "cpu", "cuda", "half", "double", "bfloat16",
            "stochastic_depth", "drop_path", "drop_block2d", "drop_block3d"}
_RESHAPES = {"view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "expand", "expand_as", "repeat",
             "unflatten", "view_as", "reshape_as", "tile", "channel_shuffle", "broadcast_to"}
_TRANSPOSES = {"permute", "transpose", "t", "swapaxes", "swapdims", "movedim", "numpy_T"}
_SPLITS = {"split", "chunk", "unbind", "split_with_sizes", "tensor_split", "unsafe_split"}
_SLICES = {"getitem", "slice", "narrow", "select", "index_select"}
_IGNORED_MODULE_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                         nn.FeatureAlphaDropout, nn.Identity)


def quiet_torch():
    """Context manager that silences torch's warnings, log lines and prints (errors stay one line)."""
    return _Quiet()


class _Quiet(contextlib.AbstractContextManager):
    def __enter__(self):
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        self._levels = {}
        for name in ("torch", "torch._dynamo", "torch.export", "torch.fx", "torch._export"):
            log = logging.getLogger(name)
            self._levels[name] = log.level
            log.setLevel(logging.CRITICAL)
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        return self

    def __exit__(self, *exc):
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._stack.close()
        return False


# --- public entry points ---------------------------------------------------------------

def torch_graph(module: nn.Module, example_inputs: Any = None, input_shapes: Any = None,
                source: str | None = None) -> Graph:
    """Layer graph of ``module`` run on inputs shaped like ``example_inputs`` (or ``input_shapes``).

    Parameters
    ----------
    module : torch.nn.Module
        The model; it is traced, never run on real data.
    example_inputs : Tensor or tuple of Tensor, optional
        Inputs whose shapes and dtypes are used (their values are not read).
    input_shapes : sequence of int, or mapping of forward-argument name to sequence of int
        Alternative to ``example_inputs`` (float32 inputs).
    source : str, optional
        How the model is named in messages and reports.

    Raises
    ------
    ModelLoadError
        No input shapes, or the module can be neither traced nor exported.
    """
    source = source or f"<{type(module).__name__}>"
    inputs = _example_inputs(module, example_inputs, input_shapes, source)
    with quiet_torch(), torch.no_grad():
        try:
            gm = _FxTracer.trace_module(module)
        except Exception as exc:  # fx cannot trace this module: data-dependent control flow etc.
            fx_problem = f"{type(exc).__name__}: {exc}"
            gm = None
        if gm is not None:
            try:
                values = _meta_values(gm, inputs)
            except Exception as exc:
                fx_problem = f"{type(exc).__name__}: {exc}"
                gm = None
        if gm is not None:
            graph = _Converter(gm.graph, values, source, module=gm).build()
            return graph
        try:
            program = torch.export.export(module, tuple(_real_like(t) for t in inputs), strict=False)
        except Exception as exc:
            raise ModelLoadError(source, f"cannot trace the module: torch.fx failed ({_first_line(fx_problem)}) "
                                         f"and torch.export failed ({_first_line(f'{type(exc).__name__}: {exc}')})") from None
        graph = exported_program_graph(program, source)
        graph.graph["notes"].append("traced with torch.export (torch.fx could not trace the module: "
                                    f"{_first_line(fx_problem)})")
        return graph


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
        return _Converter(program.graph, values, source, roles=roles).build()


# --- inputs ----------------------------------------------------------------------------

def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    text = lines[0] if lines else str(text)
    return text if len(text) <= 200 else text[:197] + "..."


def _forward_arg_names(module: nn.Module) -> list[str]:
    import inspect

    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _example_inputs(module, example_inputs, input_shapes, source) -> tuple[torch.Tensor, ...]:
    """Meta tensors with the shapes and dtypes of the inputs."""
    if example_inputs is not None:
        items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        if not all(isinstance(t, torch.Tensor) for t in items):
            raise ModelLoadError(source, "example_inputs must be a tensor or a tuple of tensors")
        return tuple(torch.empty(t.shape, dtype=t.dtype, device="meta") for t in items)
    if input_shapes is None:
        raise ModelLoadError(source, "a PyTorch module needs input shapes: pass example_inputs=torch.randn(...) "
                                     "or input_shapes=(1, 3, 224, 224) (--input-shape 1,3,224,224)")
    if isinstance(input_shapes, Mapping):
        names = _forward_arg_names(module)
        missing = [n for n in input_shapes if n not in names]
        if missing:
            raise ModelLoadError(source, f"input shape for unknown forward argument(s) {', '.join(missing)} "
                                         f"(forward takes {', '.join(names) or 'nothing'})")
        ordered = [n for n in names if n in input_shapes]
        if ordered != names[:len(ordered)]:
            raise ModelLoadError(source, f"give shapes for the first forward arguments in order ({', '.join(names)})")
        shapes = [tuple(input_shapes[n]) for n in ordered]
    else:
        shapes = [tuple(input_shapes)]
    for shape in shapes:
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise ModelLoadError(source, f"input shape {list(shape)}: dimensions must be positive integers")
    return tuple(torch.empty(s, device="meta") for s in shapes)


def _real_like(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(t.shape, dtype=t.dtype)


# --- fx fast path ----------------------------------------------------------------------

class _FxTracer(fx.Tracer):
    """Symbolic tracer that records, per node, the innermost source frame outside torch."""

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
            frame = frame.f_back
        # no user frame between torch and archlint's own call (e.g. nn.Sequential): no source line
        if frame is not None and not frame.f_code.co_filename.startswith(_ARCHLINT_DIR):
            node.meta["archlint_source"] = (frame.f_code.co_filename, frame.f_lineno)
        return node

    @classmethod
    def trace_module(cls, module: nn.Module) -> fx.GraphModule:
        tracer = cls()
        graph = tracer.trace(module)
        return fx.GraphModule(tracer.root, graph, type(module).__name__)


def _to_meta(value):
    if isinstance(value, nn.Parameter):
        return nn.Parameter(torch.empty(value.shape, dtype=value.dtype, device="meta"), requires_grad=False)
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    return value


def _meta_module(module: nn.Module) -> nn.Module:
    """A copy of a leaf module whose parameters and buffers are meta tensors (weights untouched)."""
    memo = {id(t): _to_meta(t) for t in list(module.parameters()) + list(module.buffers())}
    return copy.deepcopy(module, memo)


_SHAPE_PRESERVING = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid,
                     nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Mish, nn.Identity,
                     nn.Dropout, nn.Dropout2d)


def _window_length(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """PyTorch's output length of a conv or pooling window (floor mode)."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _shortcut_output(module: nn.Module, args: tuple) -> torch.Tensor | None:
    """Output of common leaf modules as a meta tensor computed from the input's shape alone.

    Running their meta kernels would give the same shape, but the first call of the conv and
    batch-norm meta kernels imports torch's symbolic-shape and dynamo machinery (about 2 s).
    ``None`` where no shortcut applies; the module then runs on meta tensors.
    """
    x = args[0] if len(args) == 1 else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    shape = tuple(x.shape)
    if isinstance(module, _SHAPE_PRESERVING):
        out = shape
    elif type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d) and not isinstance(module.padding, str):
        n = len(module.kernel_size)
        if len(shape) != n + 2 or shape[1] != module.in_channels:
            return None
        out = (shape[0], module.out_channels) + tuple(
            _window_length(shape[2 + i], module.kernel_size[i], module.stride[i], module.padding[i],
                           module.dilation[i]) for i in range(n))
    elif type(module) is nn.AdaptiveAvgPool2d and len(shape) == 4:
        size = _tuple(module.output_size, 2)
        out = shape[:2] + tuple(shape[2 + i] if size[i] is None else size[i] for i in range(2))
    elif type(module) is nn.Linear and shape and shape[-1] == module.in_features:
        out = shape[:-1] + (module.out_features,)
    elif type(module) in (nn.MaxPool2d, nn.AvgPool2d) and not module.ceil_mode and len(shape) == 4:
        k, st, p = (_tuple(v, 2) for v in (module.kernel_size, module.stride or module.kernel_size,
                                           module.padding))
        d = _tuple(getattr(module, "dilation", 1), 2)
        out = shape[:2] + tuple(_window_length(shape[2 + i], k[i], st[i], p[i], d[i]) for i in range(2))
    else:
        return None
    if any(v <= 0 for v in out):
        return None  # let the module's own kernel raise its error
    return torch.empty(out, dtype=x.dtype, device="meta")


_BROADCASTING = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.isub,
                 torch.add, torch.mul, torch.sub}


#: Shape-preserving functions and tensor methods (first argument in, same shape out).
_ELEMENTWISE_FUNCTIONS = {torch.relu, torch.sigmoid, torch.tanh, nn.functional.relu, nn.functional.relu6,
                          nn.functional.silu, nn.functional.gelu, nn.functional.hardswish,
                          nn.functional.hardsigmoid, nn.functional.leaky_relu, nn.functional.elu,
                          nn.functional.dropout}
_ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous"}


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """Broadcast shape of two shapes (``None`` if they do not broadcast); torch's own helper
    imports its symbolic-shape machinery on first use."""
    a, b = (1,) * (len(b) - len(a)) + a, (1,) * (len(a) - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return tuple(max(x, y) if 1 in (x, y) else x for x, y in zip(a, b))


def _shortcut_call(target, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """Activations, residual adds, elementwise products and flatten, from shapes alone
    (see _shortcut_output)."""
    if target in _ELEMENTWISE_FUNCTIONS and args and isinstance(args[0], torch.Tensor) \
            and args[0].device.type == "meta":
        return torch.empty(args[0].shape, dtype=args[0].dtype, device="meta")
    if target in _BROADCASTING and len(args) == 2 and not kwargs:
        a, b = args
        if all(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in (a, b)) and a.dtype == b.dtype:
            shape = _broadcast(tuple(a.shape), tuple(b.shape))
            if shape is not None:
                return torch.empty(shape, dtype=a.dtype, device="meta")
    if target is torch.flatten and args and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta":
        x = args[0]
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        if isinstance(start, int) and isinstance(end, int) and x.dim() > 0:
            start, end = start % x.dim(), end % x.dim()
            if start <= end:
                shape = tuple(x.shape)
                merged = shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]
                return torch.empty(merged, dtype=x.dtype, device="meta")
    return None


def _meta_values(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> dict[fx.Node, Any]:
    """Evaluate every node of ``gm`` on meta tensors: shapes without arithmetic."""
    env: dict[fx.Node, Any] = {}
    placeholders = iter(inputs)
    meta_modules: dict[str, nn.Module] = {}

    def load(arg):
        return fx.node.map_arg(arg, lambda n: env[n])

    for node in gm.graph.nodes:
        try:
            if node.op == "placeholder":
                try:
                    env[node] = next(placeholders)
                except StopIteration:
                    if node.args:  # a default value
                        env[node] = node.args[0]
                        continue
                    raise ValueError(f"forward argument '{node.target}' has no example input") from None
            elif node.op == "get_attr":
                obj = gm
                for part in node.target.split("."):
                    obj = getattr(obj, part)
                env[node] = _to_meta(obj)
            elif node.op == "call_module":
                args, kwargs = load(node.args), load(node.kwargs)
                out = None if kwargs else _shortcut_output(gm.get_submodule(node.target), args)
                if out is None:
                    if node.target not in meta_modules:
                        meta_modules[node.target] = _meta_module(gm.get_submodule(node.target))
                    out = meta_modules[node.target](*args, **kwargs)
                env[node] = out
            elif node.op == "call_function":
                args, kwargs = load(node.args), load(node.kwargs)
                out = _shortcut_call(node.target, args, kwargs)
                env[node] = node.target(*args, **kwargs) if out is None else out
            elif node.op == "call_method":
                args = load(node.args)
                x = args[0]
                if node.target in _ELEMENTWISE_METHODS and isinstance(x, torch.Tensor) and x.device.type == "meta":
                    env[node] = torch.empty(x.shape, dtype=x.dtype, device="meta")
                else:
                    env[node] = getattr(x, node.target)(*args[1:], **load(node.kwargs))
        except Exception as exc:
            raise RuntimeError(f"node '{node.name}' ({_target_name(node)}): {type(exc).__name__}: "
                               f"{_first_line(str(exc))}") from None
    return env


# --- conversion ------------------------------------------------------------------------

def _target_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    if isinstance(target, torch._ops.OpOverloadPacket):
        return str(target).split(".")[-1]
    return getattr(target, "__name__", str(target))


def _fname(node: fx.Node) -> str:
    """Normalized function name: ``relu_`` -> ``relu``, ``__add__`` -> ``add``."""
    name = _target_name(node)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name in ("iadd", "isub", "imul", "itruediv"):
            name = name[1:]
    elif name.endswith("_") and not name.startswith("_"):
        name = name[:-1]
    return name


def _tuple(value, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        values = tuple(int(v) for v in value)
        if len(values) == 1 and n > 1:
            return values * n
        return values
    return (int(value),) * n


def _shape(value) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        try:
            return tuple(int(d) for d in value.shape)
        except Exception:  # symbolic sizes
            return None
    return None


def _arg(node: fx.Node, index: int, names: Sequence[str] | str, default=None):
    names = (names,) if isinstance(names, str) else names
    if index is not None and index < len(node.args):
        return node.args[index]
    for name in names:
        if name in node.kwargs:
            return node.kwargs[name]
    return default


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
    folded: bool = False
    name: str = ""
    origin: str = ""
    extra: dict = field(default_factory=dict)


class _Converter:
    def __init__(self, graph: fx.Graph, values: dict, source: str, module: nn.Module | None = None,
                 roles: dict[str, tuple[str, str]] | None = None) -> None:
        self.fx = graph
        self.values = values
        self.source = source
        self.module = module
        self.roles = roles  # export: placeholder name -> (role, target)
        self.producer: dict[fx.Node, tuple[str, int]] = {}
        #: parameters reaching a node only through weight-side arithmetic (a class token
        #: expanded, a bias table indexed): counted on the first layer that consumes them
        self.carried: dict[fx.Node, list[tuple[int, ...]]] = {}
        self.entries: dict[str, _Entry] = {}
        self.inputs: list[tuple[str, tuple[int, ...] | None]] = []
        self.outputs: list[str] = []
        self.unsupported: Counter = Counter()

    # -- node roles ----------------------------------------------------------------------

    def _param_target(self, node) -> str | None:
        """FQN of the parameter a node reads, if it is one."""
        if not isinstance(node, fx.Node):
            return None
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

    def _scope_stack(self, node: fx.Node) -> list[str]:
        stack = node.meta.get("nn_module_stack") or {}
        return [v[0] if isinstance(v, tuple) else str(v) for v in stack.values()]

    def _source(self, node: fx.Node) -> Source | None:
        recorded = node.meta.get("archlint_source")
        if recorded:
            return local_source(*recorded)
        return source_from_trace(node.meta.get("stack_trace") or "", _TORCH_DIR)

    # -- building ------------------------------------------------------------------------

    def build(self) -> Graph:
        for node in self.fx.nodes:
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "output":
                self._outputs(node)
            elif node.op in ("call_module", "call_function", "call_method"):
                self._call(node)
        folded = self._fold_batchnorm()
        self._name()
        return self._graph(folded)

    def _placeholder(self, node: fx.Node) -> None:
        if self.roles is not None and self.roles.get(node.name, ("input",))[0] != "input":
            return
        value = self.values.get(node)
        if not isinstance(value, torch.Tensor):
            return
        shape = _shape(value)
        if shape is None:
            raise ShapeError(self.source, f"input '{node.name}' has symbolic (dynamic) dimensions; "
                                          "archlint needs static shapes")
        key = node.target if isinstance(node.target, str) and self.roles is None else node.name
        key = key.lstrip("*")
        self.inputs.append((key, shape))
        self.producer[node] = (key, 0)

    def _outputs(self, node: fx.Node) -> None:
        for arg in _flatten(node.args):
            if isinstance(arg, fx.Node) and arg in self.producer:
                key = self.producer[arg][0]
                if key not in self.outputs:
                    self.outputs.append(key)

    def _data_inputs(self, node: fx.Node) -> list[fx.Node]:
        found = []
        for arg in _flatten((node.args, node.kwargs)):
            if isinstance(arg, fx.Node) and arg in self.producer and arg not in found:
                found.append(arg)
        return found

    def _carried(self, node: fx.Node) -> list[tuple[int, ...]]:
        """Parameter shapes arriving at ``node`` through arguments that are not activations."""
        found = []
        for arg in _flatten((node.args, node.kwargs)):
            if isinstance(arg, fx.Node) and arg not in self.producer:
                found.extend(self.carried.pop(arg, ()))
        return found

    def _call(self, node: fx.Node) -> None:
        data = self._data_inputs(node)
        if not data:  # constants, shape arithmetic, or arithmetic on parameters alone
            own = [tuple(self.values[a].shape) for a in _flatten((node.args, node.kwargs))
                   if self._param_target(a) and a in self.values]
            carried = self._carried(node) + own
            if carried:
                self.carried[node] = carried
            return
        value = self.values.get(node)
        is_tensor = isinstance(value, torch.Tensor)
        # a module may return (tensor, None), e.g. nn.MultiheadAttention without weights
        is_multi = isinstance(value, (tuple, list)) and isinstance(value[0] if value else None, torch.Tensor)
        if node.op == "call_function" and node.target is operator.getitem:
            source = node.args[0]
            if isinstance(source, fx.Node) and isinstance(self.values.get(source), (tuple, list)):
                if source in self.producer and isinstance(node.args[1], int):
                    key, _ = self.producer[source]
                    self.producer[node] = (key, node.args[1])
                return
        if not (is_tensor or is_multi):
            return  # sizes, dims: shape arithmetic
        if node.op == "call_module":
            module = self.module.get_submodule(node.target)
            if isinstance(module, _IGNORED_MODULE_TYPES):
                self.producer[node] = self.producer[data[0]]
                return
            spec = self._module_spec(node, module, data)
            params = [tuple(p.shape) for p in module.parameters()]
            weight_module = None
        else:
            name = _fname(node)
            if name in _ALIASES and data and node.args and node.args[0] is data[0]:
                self.producer[node] = self.producer[data[0]]
                return
            spec = self._function_spec(node, name, data)
            param_nodes = [a for a in _flatten((node.args, node.kwargs)) if self._param_target(a)]
            params = [tuple(self.values[a].shape) if a in self.values else () for a in param_nodes]
            weight_module = None
            if spec[0] in (Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR):
                weight = _arg(node, 1, "weight")
                target = self._param_target(weight)
                if target and target.endswith(".weight"):
                    weight_module = target[: -len(".weight")]
        params = params + self._carried(node)
        op, otype, fields = spec
        stack = self._scope_stack(node)
        scope = node.target if node.op == "call_module" else (stack[-1] if stack else "")
        in_shapes = tuple(self._value_shape(d) for d in data)
        out_shape = _shape(value) if is_tensor else _shape(value[0])
        key = f"%{node.name}"
        source_op = (type(self.module.get_submodule(node.target)).__name__ if node.op == "call_module"
                     else _target_name(node))
        entry = _Entry(node, op, otype, source_op, fields, [self.producer[d] for d in data], params, scope,
                       weight_module, self._source(node), out_shape, in_shapes, key=key)
        if op is Op.OTHER:
            self.unsupported[source_op] += 1
        self.entries[key] = entry
        self.producer[node] = (key, 0)

    def _value_shape(self, node: fx.Node):
        value = self.values.get(node)
        if isinstance(value, (tuple, list)):
            index = self.producer[node][1]
            value = value[index] if index < len(value) else None
        return _shape(value)

    # -- op mapping ------------------------------------------------------------------------

    def _x(self, data):
        return self._value_shape(data[0]) if data else None

    def _module_spec(self, node, m: nn.Module, data) -> tuple[Op, str, dict]:
        x = self._x(data)
        if isinstance(m, nn.modules.conv._ConvNd):
            transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
            return self._conv(x, tuple(m.weight.shape), m.stride, m.padding, m.dilation, m.groups, transposed)
        if isinstance(m, nn.Linear):
            return Op.LINEAR, "Gemm", dict(in_channels=m.in_features, out_channels=m.out_features)
        if isinstance(m, nn.modules.pooling._MaxPoolNd):
            return self._pool(Op.MAX_POOL, x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        if isinstance(m, nn.modules.pooling._AvgPoolNd) and hasattr(m, "kernel_size"):
            return self._pool(Op.AVG_POOL, x, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode)
        if isinstance(m, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
            kind = Op.MAX_POOL if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd) else Op.AVG_POOL
            return self._adaptive(kind, x, m.output_size)
        if isinstance(m, nn.modules.batchnorm._NormBase) or isinstance(
                m, (nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)):
            otype = {"GroupNorm": "GroupNormalization", "LayerNorm": "LayerNormalization"}.get(
                type(m).__name__, "InstanceNormalization" if "Instance" in type(m).__name__ else "BatchNormalization")
            return Op.NORM, otype, {}
        if isinstance(m, nn.Flatten):
            out = _shape(self.values.get(node))
            return (Op.FLATTEN, "Flatten", {}) if out is not None and len(out) <= 2 else (Op.RESHAPE, "Reshape", {})
        if isinstance(m, (nn.Unflatten, nn.ChannelShuffle)):
            return Op.RESHAPE, "Reshape", {}
        if isinstance(m, nn.Upsample):
            mode = m.mode
            return self._resize(node, x, mode, m.align_corners)
        if isinstance(m, nn.modules.padding._ConstantPadNd) or isinstance(
                m, (nn.modules.padding._ReflectionPadNd, nn.modules.padding._ReplicationPadNd)):
            mode = ("reflect" if isinstance(m, nn.modules.padding._ReflectionPadNd)
                    else "edge" if isinstance(m, nn.modules.padding._ReplicationPadNd) else "constant")
            return self._pad(x, m.padding, mode)
        if isinstance(m, nn.Softmax2d):
            return Op.ACTIVATION, "Softmax", {}
        if type(m).__module__.startswith("torch.nn.modules.activation") and not isinstance(m, nn.MultiheadAttention):
            name = type(m).__name__.lower()
            return Op.ACTIVATION, _ACTIVATION_TYPES.get(name, type(m).__name__), {}
        return Op.OTHER, type(m).__name__, {}

    def _function_spec(self, node, name: str, data) -> tuple[Op, str, dict]:
        x = self._x(data)
        val = lambda a: self.values.get(a) if isinstance(a, fx.Node) else a  # noqa: E731
        if name in ("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                    "conv_transpose2d", "conv_transpose3d"):
            w = _shape(val(_arg(node, 1, "weight")))
            if w is None:
                return Op.OTHER, "Conv", {}
            transposed = name.startswith("conv_transpose") or (
                name in ("convolution", "_convolution") and bool(_arg(node, 6, "transposed", False)))
            stride = _arg(node, 3, "stride", 1)
            padding = _arg(node, 4, "padding", 0)
            if name.startswith("conv_transpose"):
                dilation, groups = _arg(node, 7, "dilation", 1), _arg(node, 6, "groups", 1)
            elif name in ("convolution", "_convolution"):
                dilation, groups = _arg(node, 5, "dilation", 1), _arg(node, 8, "groups", 1)
            else:
                dilation, groups = _arg(node, 5, "dilation", 1), _arg(node, 6, "groups", 1)
            return self._conv(x, w, stride, padding, dilation, groups, transposed)
        if name == "einsum":
            equation, operands = (node.args[0] if node.args else None), list(node.args[1:])
            if len(operands) == 1 and isinstance(operands[0], (list, tuple)):  # einsum(eq, [a, b])
                operands = list(operands[0])
            k = (einsum_contraction(equation, [_shape(val(o)) for o in operands])
                 if isinstance(equation, str) else None)
            out = _shape(self.values.get(node))
            if k is not None:
                return Op.MATMUL, "Einsum", dict(in_channels=k, out_channels=out[-1] if out else None)
            return Op.OTHER, "einsum", {}
        if name in ("linear", "matmul", "mm", "bmm", "addmm"):
            operands = [_arg(node, 0, ("input", "self")), _arg(node, 1, ("weight", "other", "mat2"))]
            if name == "addmm":
                operands = [_arg(node, 1, "mat1"), _arg(node, 2, "mat2")]
            has_weight = any(isinstance(o, fx.Node) and o not in self.producer for o in operands)
            first = _shape(val(operands[0]))
            out = _shape(self.values.get(node))
            k = first[-1] if first else None
            return (Op.LINEAR if has_weight else Op.MATMUL, "Gemm" if name == "linear" else "MatMul",
                    dict(in_channels=k, out_channels=out[-1] if out else None))
        pools = {"max_pool1d": Op.MAX_POOL, "max_pool2d": Op.MAX_POOL, "max_pool3d": Op.MAX_POOL,
                 "max_pool1d_with_indices": Op.MAX_POOL, "max_pool2d_with_indices": Op.MAX_POOL,
                 "max_pool3d_with_indices": Op.MAX_POOL, "avg_pool1d": Op.AVG_POOL, "avg_pool2d": Op.AVG_POOL,
                 "avg_pool3d": Op.AVG_POOL}
        if name in pools:
            kernel = _arg(node, 1, "kernel_size")
            stride = _arg(node, 2, "stride", None)
            padding = _arg(node, 3, "padding", 0)
            if pools[name] is Op.MAX_POOL:
                dilation, ceil = _arg(node, 4, "dilation", 1), _arg(node, 5, "ceil_mode", False)
            else:
                dilation, ceil = 1, _arg(node, 4, "ceil_mode", False)
            return self._pool(pools[name], x, kernel, stride, padding, dilation, ceil)
        if name.startswith(("adaptive_avg_pool", "_adaptive_avg_pool", "adaptive_max_pool")):
            kind = Op.MAX_POOL if "max" in name else Op.AVG_POOL
            return self._adaptive(kind, x, _arg(node, 1, "output_size"))
        if name in ("mean", "amax", "sum", "max", "amin") and x and len(x) >= 3 and (
                _arg(node, 1, "dim") is not None):
            dims = _arg(node, 1, "dim")
            dims = [dims] if isinstance(dims, int) else list(dims)
            if sorted(d % len(x) for d in dims) == list(range(2, len(x))):
                otype = {"mean": "ReduceMean", "sum": "ReduceSum"}.get(name, "ReduceMax")
                return Op.GLOBAL_POOL, otype, dict(in_channels=x[1], out_channels=x[1])
            if name in ("mean", "sum", "amax", "amin"):
                return Op.OTHER, name, {}
        if name in _ADD_TYPES:
            return Op.ADD, _ADD_TYPES[name], {}
        if name in _MUL_TYPES and not (name in ("max", "min") and len(data) < 2):
            return Op.MUL, _MUL_TYPES[name], {}
        if name in ("cat", "concat", "concatenate", "stack", "hstack", "vstack"):
            return Op.CONCAT, "Concat", {}
        if name in _ACTIVATION_TYPES:
            return Op.ACTIVATION, _ACTIVATION_TYPES[name], {}
        if name in _NORM_FUNCS:
            otype = {"group_norm": "GroupNormalization", "layer_norm": "LayerNormalization",
                     "native_layer_norm": "LayerNormalization", "instance_norm": "InstanceNormalization",
                     "native_group_norm": "GroupNormalization"}.get(name, "BatchNormalization")
            return Op.NORM, otype, {}
        if name == "flatten":
            out = _shape(self.values.get(node))
            return (Op.FLATTEN, "Flatten", {}) if out is not None and len(out) <= 2 else (Op.RESHAPE, "Reshape", {})
        if name in _RESHAPES:
            return Op.RESHAPE, "Reshape" if name not in ("unsqueeze", "squeeze") else name.capitalize(), {}
        if name in _TRANSPOSES:
            return Op.RESHAPE, "Transpose", self._perm(node, name, x)
        if name in ("interpolate", "upsample") or name.startswith(("upsample_", "_upsample_")):
            return self._resize_function(node, name, x)
        if name in ("pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
                    "replication_pad1d", "replication_pad2d", "replication_pad3d"):
            mode = _arg(node, 2, "mode", "constant") if name == "pad" else (
                "reflect" if name.startswith("reflection") else "edge" if name.startswith("replication") else "constant")
            mode = {"replicate": "edge"}.get(mode, mode)
            return self._pad(x, _arg(node, 1, "pad" if name != "pad" else ("pad",), ()), mode)
        if name in _SPLITS:
            return Op.SLICE, "Split", {}
        if name in _SLICES:
            return Op.SLICE, "Slice", self._slice(node, name, x)
        return Op.OTHER, _target_name(node), {}

    # -- attribute normalization -----------------------------------------------------------

    def _conv(self, x, w, stride, padding, dilation, groups, transposed) -> tuple[Op, str, dict]:
        n = len(w) - 2
        kernel = tuple(int(k) for k in w[2:])
        stride, dilation, groups = _tuple(stride, n), _tuple(dilation, n), int(groups)
        if isinstance(padding, str):
            if padding == "same":
                totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
                begin, end = tuple(t // 2 for t in totals), tuple(t - t // 2 for t in totals)
            else:
                begin = end = (0,) * n
        else:
            begin = end = _tuple(padding, n)
        if transposed:
            cin, cout = int(w[0]), int(w[1]) * groups
        else:
            cin, cout = int(w[1]) * groups, int(w[0])
        op = Op.CONV_TRANSPOSE if transposed else Op.CONV
        return op, _ONNX_TYPE[op], dict(kernel=kernel, stride=stride, dilation=dilation, pads_begin=begin,
                                        pads_end=end, groups=groups, in_channels=cin, out_channels=cout)

    def _pool(self, op, x, kernel, stride, padding, dilation, ceil) -> tuple[Op, str, dict]:
        n = len(x) - 2 if x else len(_tuple(kernel, 1))
        kernel = _tuple(kernel, n)
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _tuple(stride, n)
        pads = _tuple(padding, n)
        ch = x[1] if x and len(x) > 1 else None
        return op, _ONNX_TYPE[op], dict(kernel=kernel, stride=stride, dilation=_tuple(dilation, n), pads_begin=pads,
                                        pads_end=pads, ceil_mode=bool(ceil), in_channels=ch, out_channels=ch)

    def _adaptive(self, kind, x, output_size) -> tuple[Op, str, dict]:
        if not x or len(x) < 3:
            return Op.OTHER, "AdaptivePool", {}
        n = len(x) - 2
        sizes = output_size if isinstance(output_size, (list, tuple)) else (output_size,) * n
        sizes = tuple(x[2 + i] if s is None else int(s) for i, s in enumerate(sizes))
        ch = x[1]
        if all(s == 1 for s in sizes):
            otype = "GlobalMaxPool" if kind is Op.MAX_POOL else "GlobalAveragePool"
            return Op.GLOBAL_POOL, otype, dict(in_channels=ch, out_channels=ch)
        if all(size % s == 0 for size, s in zip(x[2:], sizes)):
            stride = tuple(size // s for size, s in zip(x[2:], sizes))
            return kind, _ONNX_TYPE[kind], dict(kernel=stride, stride=stride, dilation=(1,) * n,
                                                pads_begin=(0,) * n, pads_end=(0,) * n, in_channels=ch,
                                                out_channels=ch)
        return Op.OTHER, "AdaptivePool", {}

    def _resize(self, node, x, mode, align_corners) -> tuple[Op, str, dict]:
        out = _shape(self.values.get(node))
        scales = tuple(o / i for o, i in zip(out[2:], x[2:])) if x and out and len(x) == len(out) else ()
        onnx_mode = {"nearest": "nearest", "nearest-exact": "nearest", "bicubic": "cubic"}.get(mode, "linear")
        # PyTorch "nearest" reads floor(y * in/out); "nearest-exact" floor((y + 0.5) * in/out)
        if mode == "nearest":
            coordinate, rounding = "asymmetric", "floor"
        elif mode == "nearest-exact":
            coordinate, rounding = "half_pixel", "round_prefer_ceil"
        else:
            coordinate = "align_corners" if align_corners else "pytorch_half_pixel"
            rounding = "round_prefer_floor"
        return Op.RESIZE, "Resize", dict(scales=scales, mode=onnx_mode, coordinate_mode=coordinate,
                                         rounding=rounding)

    def _resize_function(self, node, name, x) -> tuple[Op, str, dict]:
        if name == "interpolate" or name == "upsample":
            return self._resize(node, x, _arg(node, 3, "mode", "nearest"), _arg(node, 4, "align_corners", None))
        base = name.lstrip("_").removeprefix("upsample_")
        mode = "nearest-exact" if "exact" in base else "nearest" if base.startswith("nearest") else (
            "bicubic" if base.startswith("bicubic") else "bilinear")
        align = _arg(node, 2, "align_corners", False) if mode not in ("nearest", "nearest-exact") else None
        return self._resize(node, x, mode, align)

    def _pad(self, x, pad, mode) -> tuple[Op, str, dict]:
        if not x or len(x) < 3:
            return Op.PAD, "Pad", {}
        rank = len(x)
        pad = _tuple(pad, 2 * (rank - 2)) if isinstance(pad, int) else tuple(int(p) for p in pad)
        begin, end = [0] * rank, [0] * rank
        for i in range(len(pad) // 2):  # pairs from the last axis backwards
            axis = rank - 1 - i
            begin[axis], end[axis] = pad[2 * i], pad[2 * i + 1]
        return Op.PAD, "Pad", dict(pads_begin=tuple(begin[2:]), pads_end=tuple(end[2:]), mode=mode)

    def _perm(self, node, name, x) -> dict:
        if not x:
            return {}
        rank = len(x)
        order = list(range(rank))
        args = [a for a in node.args[1:]]
        try:
            if name == "permute":
                dims = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
                dims = dims or _arg(node, None, "dims")
                return dict(perm=tuple(int(d) % rank for d in dims))
            if name in ("transpose", "swapaxes", "swapdims"):
                a, b = int(args[0]) % rank, int(args[1]) % rank
                order[a], order[b] = order[b], order[a]
                return dict(perm=tuple(order))
            if name in ("t", "numpy_T"):
                return dict(perm=tuple(reversed(order)))
        except (IndexError, TypeError, ValueError):
            return {}
        return {}

    def _slice(self, node, name, x) -> dict:
        """Start and step per spatial axis for basic slicing (``x[:, :, 1:]``, ``aten.slice``)."""
        if not x or len(x) < 3:
            return {}
        rank = len(x)
        first, step = [0] * rank, [1] * rank
        if name == "slice":
            items = {int(_arg(node, 1, "dim", 0)) % rank: slice(_arg(node, 2, "start", None), _arg(node, 3, "end", None),
                                                                _arg(node, 4, "step", 1))}
        elif name == "getitem":
            index = node.args[1]
            index = index if isinstance(index, tuple) else (index,)
            if any(i is Ellipsis or i is None or not isinstance(i, (slice, int)) for i in index):
                return {}
            if any(isinstance(i, int) for i in index[:rank]):
                return {}  # selects away an axis
            items = {axis: i for axis, i in enumerate(index)}
        else:
            return {}
        for axis, sl in items.items():
            if not isinstance(sl, slice):
                return {}
            start, stp = sl.start, sl.step
            if isinstance(start, fx.Node) or isinstance(stp, fx.Node):
                return {}
            start = 0 if start is None else int(start)
            stp = 1 if stp is None else int(stp)
            size = x[axis]
            start = start + size if start < 0 else start
            first[axis], step[axis] = min(max(start, 0), size), stp
        return dict(starts=tuple(first[2:]), stride=tuple(step[2:]))

    # -- BatchNorm folding, naming, graph ---------------------------------------------------

    def _fold_batchnorm(self) -> int:
        """Fold a BatchNorm that is the only consumer of a conv into the conv (as the exporters do)."""
        users: dict[str, int] = Counter()
        for entry in self.entries.values():
            for key, _ in entry.inputs:
                users[key] += 1
        for key in self.outputs:
            users[key] += 1
        folded = 0
        redirect: dict[str, str] = {}
        for entry in list(self.entries.values()):
            if entry.op is not Op.NORM or entry.otype != "BatchNormalization" or len(entry.inputs) != 1:
                continue
            prev_key, index = entry.inputs[0]
            prev_key = redirect.get(prev_key, prev_key)
            prev = self.entries.get(prev_key)
            if prev is None or prev.op is not Op.CONV or users[prev_key] != 1 or index != 0:
                continue
            prev.params = prev.params + entry.params
            prev.out_shape = entry.out_shape
            prev.extra["folded"] = entry.node.name
            entry.folded = True
            redirect[entry.key] = prev_key
            folded += 1
        if redirect:
            for entry in self.entries.values():
                entry.inputs = [(redirect.get(k, k), i) for k, i in entry.inputs]
            self.outputs = list(dict.fromkeys(redirect.get(k, k) for k in self.outputs))
            for node, (key, index) in list(self.producer.items()):
                if key in redirect:
                    self.producer[node] = (redirect[key], index)
        return folded

    def _name(self) -> None:
        entries = [e for e in self.entries.values() if not e.folded]
        scopes = [e.scope for e in entries]
        outer = containers(scopes)
        by_scope: dict[str, set[str]] = defaultdict(set)
        for e in entries:
            if e.scope is not None:
                by_scope[e.scope].add(e.otype)
        raw = []
        for e in entries:
            if e.weight_module is not None:
                raw.append((e.weight_module, "module"))
            elif e.scope and e.scope not in outer and len(by_scope[e.scope]) == 1:
                raw.append((e.scope, "module"))
            else:
                raw.append((f"{e.scope}/{e.otype}" if e.scope else e.otype, "scope"))
        names = unique_names([name for name, _ in raw], reserved=[key for key, _ in self.inputs])
        for e, name, (_, origin) in zip(entries, names, raw):
            e.name, e.origin = name, origin

    def _graph(self, folded: int) -> Graph:
        notes = []
        if folded:
            notes.append(f"{folded} BatchNorm layer(s) directly after a conv folded into it, as the ONNX exporters "
                         "do; their parameters are counted on the conv")
        graph = Graph(model=self.source, format="torch", notes=notes, unsupported_ops=self.unsupported,
                      inputs=[], outputs=[])
        names: dict[str, str] = {}
        for key, shape in self.inputs:
            graph.add_node(key, layer=Layer(name=key, op=Op.INPUT, source_op="input", output_shape=shape,
                                            name_origin="node"))
            graph.graph["inputs"].append(key)
            names[key] = key
        for e in self.entries.values():
            if e.folded:
                continue
            names[e.key] = e.name
            in_shapes = tuple(self._input_shape(k, i) for k, i in e.inputs)
            graph.add_node(e.name, layer=Layer(
                name=e.name, op=e.op, source_op=e.source_op, output_shape=e.out_shape, input_shapes=in_shapes,
                param_shapes=tuple(e.params), name_origin=e.origin, source=e.source,
                extra={"torch_node": e.node.name, **e.extra}, **e.fields))
            for position, (key, index) in enumerate(e.inputs):
                src = names[key]
                if not graph.has_edge(src, e.name):
                    graph.add_edge(src, e.name, index=position, output=index)
        graph.graph["outputs"] = [names[k] for k in self.outputs if k in names]
        return graph

    def _input_shape(self, key: str, index: int):
        if key in self.entries:
            entry = self.entries[key]
            value = self.values.get(entry.node)
            if isinstance(value, (tuple, list)):
                return _shape(value[index]) if index < len(value) else None
            return entry.out_shape
        for name, shape in self.inputs:
            if name == key:
                return shape
        return None


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    elif isinstance(value, slice):
        yield from _flatten((value.start, value.stop, value.step))
    else:
        yield value
