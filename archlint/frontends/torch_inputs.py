"""Inputs for tracing a module: meta tensors shaped like the example inputs or the given shapes."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError

__all__ = ["example_args", "meta_inputs", "real_like"]


def example_args(example_inputs: Any) -> tuple:
    """The example inputs as positional arguments: a tuple or list as a tuple, anything else alone in one."""
    return tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)


def _forward_arg_names(module: nn.Module) -> list[str]:
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def meta_inputs(module: nn.Module, example_inputs: Any, input_shapes: Any,
                    source: str) -> tuple[torch.Tensor, ...]:
    """Meta tensors with the shapes and dtypes of the inputs."""
    if example_inputs is not None:
        items = example_args(example_inputs)
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


def real_like(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(t.shape, dtype=t.dtype)

