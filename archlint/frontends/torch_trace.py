"""Tracing a module with torch.fx and evaluating every node on meta tensors.

Standard ``torch.nn`` modules stay leaves of the trace. Shapes come from meta tensors, so no
real arithmetic runs and the weights are never touched (leaf modules run on a copy whose
parameters are meta tensors). Common leaf modules and functions get their output shape
from their input shape alone (shape shortcuts): the first call of some meta kernels imports
torch's symbolic-shape machinery, which costs seconds.
"""

from __future__ import annotations

import copy
import math
import operator
import os
import sys
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import one_line
from .torch_ops import int_tuple, target_name

__all__ = ["FxTracer", "meta_values", "TORCH_DIR"]

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_ARCHLINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class FxTracer(fx.Tracer):
    """Symbolic tracer that records, per node, the innermost source frame outside torch."""

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(TORCH_DIR):
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
        size = int_tuple(module.output_size, 2)
        out = shape[:2] + tuple(shape[2 + i] if size[i] is None else size[i] for i in range(2))
    elif type(module) is nn.Linear and shape and shape[-1] == module.in_features:
        out = shape[:-1] + (module.out_features,)
    elif type(module) in (nn.MaxPool2d, nn.AvgPool2d) and not module.ceil_mode and len(shape) == 4:
        k, st, p = (int_tuple(v, 2) for v in (module.kernel_size, module.stride or module.kernel_size,
                                           module.padding))
        d = int_tuple(getattr(module, "dilation", 1), 2)
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


def meta_values(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> dict[fx.Node, Any]:
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
            raise RuntimeError(f"node '{node.name}' ({target_name(node)}): "
                               f"{one_line(exc, named=True)}") from None
    return env

