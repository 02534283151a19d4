"""Calls the PyTorch converter does not understand, opened into ATen operators.

``nn.MultiheadAttention`` (a leaf of the fx trace), ``F.scaled_dot_product_attention`` (one
fused kernel) and functions that ``torch.fx.wrap`` keeps whole (torchvision's
``shifted_window_attention``) hide matrix products. Such a call is traced again with
``make_fx`` on meta tensors, which runs it in Python with concrete shapes (so its shape
arithmetic and control flow on shapes work) and records the ATen operators it dispatches:
the converter then maps those like any other node. Attention comes out as its matrix
products (``bmm`` of queries and keys, ``bmm`` of weights and values), as FlopCounterMode
counts it when fused kernels are switched off.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from .torch_ops import target_name

__all__ = ["Opened", "open_call"]


@dataclass
class Opened:
    """The ATen graph of one call.

    ``stands_for`` gives, per placeholder of ``graph`` in order, what it receives: a node of
    the outer graph, or ``("param", tensor, qualified name)`` / ``("buffer", tensor, qualified
    name)`` for a parameter or buffer of the called module. ``outputs`` are the graph's outputs in the order of the call's flattened
    result (``None`` where the result holds no tensor).
    """

    graph: fx.Graph
    stands_for: list[Any]
    outputs: list[fx.Node | None]


def _meta(value):
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    return value


@contextlib.contextmanager
def _no_fast_path():
    """nn.MultiheadAttention's fused inference path hides its products in one kernel."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def _configuration(module: nn.Module) -> tuple:
    """What, besides input shapes, decides the operators a module runs: its class, plain
    attributes (heads, flags) and parameter shapes, for it and every submodule."""
    plain = (int, float, bool, str, type(None))
    parts = []
    for path, sub in module.named_modules():
        attributes = tuple(sorted((k, v) for k, v in vars(sub).items()
                                  if isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(i, plain) for i in v))))
        tensors = tuple((n, tuple(t.shape), t.dtype) for n, t in list(sub.named_parameters(recurse=False))
                        + list(sub.named_buffers(recurse=False)))
        parts.append((path, type(sub), attributes, tensors))
    return tuple(parts)


def _cache_key(node: fx.Node, concrete: list, spec, module: nn.Module | None):
    described = []
    for item in concrete:
        if isinstance(item, torch.Tensor):
            described.append(("tensor", tuple(item.shape), item.dtype))
        else:
            described.append(("value", type(item), item))
    target = _configuration(module) if module is not None else (node.op, node.target)
    try:
        key = (target, str(spec), tuple(described))
        hash(key)
    except TypeError:  # unhashable constants
        return None
    return key


def open_call(node: fx.Node, values: dict, root: nn.Module | None, cache: dict | None = None) -> Opened | None:
    """The ATen graph of the call at ``node`` (inputs shaped as in ``values``), or ``None`` if it
    cannot be traced or has nothing finer to show (one operator of the same name).

    ``cache`` keeps the traced graphs of earlier calls by what decides them (the callee and
    its configuration, input shapes, constants): identical blocks are traced once. Callers
    converting a cached graph again must forget what they recorded on its nodes before.
    """
    flat, spec = tree_flatten((node.args, node.kwargs))
    concrete, tensor_at, stands_for = [], [], []
    for i, item in enumerate(flat):
        value = values.get(item) if isinstance(item, fx.Node) else item
        if isinstance(item, fx.Node) and not isinstance(value, (torch.Tensor, int, float, bool, type(None))):
            return None  # lists of tensors and other structures: not opened
        if isinstance(value, torch.Tensor) and not all(isinstance(d, int) for d in value.shape):
            return None  # symbolic sizes (a program exported with dynamic shapes)
        concrete.append(_meta(value))
        if isinstance(value, torch.Tensor):
            tensor_at.append(i)
            stands_for.append(item)
    module = root.get_submodule(node.target) if node.op == "call_module" and root is not None else None
    owned = list(module.named_parameters()) + list(module.named_buffers()) if module is not None else []
    key = _cache_key(node, concrete, spec, module) if cache is not None else None
    if key is not None and key in cache:
        traced = cache[key]
    else:
        traced = _trace(node, module, owned, concrete, spec, tensor_at)
        if key is not None:
            cache[key] = traced
    if traced is None:
        return None
    graph, outputs = traced
    prefix = f"{node.target}." if module is not None else ""
    stands_for = [("param" if isinstance(t, nn.Parameter) else "buffer", t, prefix + name)
                  for name, t in owned] + stands_for
    if sum(1 for n in graph.nodes if n.op == "placeholder") != len(stands_for):
        return None
    return Opened(graph, stands_for, outputs)


def _trace(node: fx.Node, module: nn.Module | None, owned: list, concrete: list, spec, tensor_at: list[int]
           ) -> tuple[fx.Graph, list[fx.Node | None]] | None:
    """make_fx of the call on meta tensors: its graph and flattened outputs, or ``None``."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def run(*tensors):
        items = list(concrete)
        for i, t in zip(tensor_at, tensors[len(owned):]):
            items[i] = t
        args, kwargs = tree_unflatten(items, spec)
        if module is not None:
            state = {name: t for (name, _), t in zip(owned, tensors)}
            return torch.func.functional_call(module, state, tuple(args), kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)

    tensors = [_meta(t) for _, t in owned] + [concrete[i] for i in tensor_at]
    try:
        with _no_fast_path(), torch.no_grad():
            gm = make_fx(run)(*tensors)
    except Exception:  # data-dependent control flow on values, unsupported meta kernels...
        return None
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    if len(calls) <= 1 and all(target_name(n) == target_name(node) for n in calls):
        return None
    output = next(n for n in gm.graph.nodes if n.op == "output")
    return gm.graph, [o if isinstance(o, fx.Node) else None for o in tree_flatten(output.args[0])[0]]
