"""PyTorch frontend: an ``nn.Module`` -> archlint :class:`~archlint.graph.Graph`, choosing how to trace it.

This module imports torch; :func:`archlint.frontends.load_graph` imports it only when it is
given a torch object, a ``.pt2``/``.pt`` file or a ``pkg.module:factory`` reference. Its
job is the order of attempts; each step has its own module:

- :mod:`.torch_quiet`: silencing torch's warnings, log lines and prints;
- :mod:`.torch_inputs`: meta tensors shaped like the inputs;
- :mod:`.torch_trace`: ``torch.fx`` symbolic tracing and meta-tensor shapes with shortcuts;
- :mod:`.torch_convert`: a traced fx graph or a ``torch.export`` program -> layers;
- :mod:`.torch_parts`: models that cannot be traced whole, linted part by part.

Fast path: ``torch.fx`` symbolic tracing (standard ``torch.nn`` modules stay leaves), then
every node is evaluated on ``meta`` tensors. Modules fx cannot trace (Python control flow on
tensor values or shapes, ``isinstance`` on proxies...) fall back to ``torch.export.export``
with ``strict=False`` on fake tensors; saved ``.pt2`` programs take the same route after
loading (:mod:`.torch_files`). Both graphs go through one converter. A module that neither
traces whole is linted part by part.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import one_line
from ..graph import Graph
from .torch_convert import exported_program_graph, module_graph
from .torch_inputs import example_args, meta_inputs, real_like
from .torch_parts import part_graph
from .torch_quiet import quiet_torch
from .torch_trace import FxTracer, meta_values

__all__ = ["torch_graph"]


def torch_graph(module: nn.Module, example_inputs: Any = None, input_shapes: Any = None,
                source: str | None = None) -> Graph:
    """Layer graph of ``module`` run on inputs shaped like ``example_inputs`` (or ``input_shapes``).

    Parameters
    ----------
    module : torch.nn.Module
        The model; it is traced, never run on real data.
    example_inputs : Tensor or tuple of Tensor, optional
        Inputs whose shapes and dtypes are used (their values are not read). A tuple item may
        be a list, tuple or dict of tensors (a detector's list of images); the model is then
        linted part by part (:mod:`.torch_parts`), which runs it once on these tensors.
    input_shapes : sequence of int, or mapping of forward-argument name to sequence of int
        Alternative to ``example_inputs`` (float32 inputs).
    source : str, optional
        How the model is named in messages and reports.

    A module that neither fx nor ``torch.export`` traces whole is linted part by part too, run
    on ``example_inputs`` (or seeded random tensors of ``input_shapes``).

    Raises
    ------
    ModelLoadError
        No input shapes, or no part of the module can be traced (or it does not run).
    """
    source = source or f"<{type(module).__name__}>"
    if _structured(example_inputs):  # lists or dicts of tensors: traced from the root down, part by part
        with quiet_torch():
            return part_graph(module, example_args(example_inputs), {}, source, "its inputs hold lists, tuples or dicts")
    inputs = meta_inputs(module, example_inputs, input_shapes, source)
    with quiet_torch(), torch.no_grad():
        try:
            gm = FxTracer.trace_module(module)
        except Exception as exc:  # fx cannot trace this module: data-dependent control flow etc.
            fx_problem = one_line(exc, named=True)
            gm = None
        if gm is not None:
            try:
                values = meta_values(gm, inputs)
            except Exception as exc:
                fx_problem = one_line(exc, named=True)
                gm = None
        if gm is not None:
            return module_graph(gm, values, source)
        try:
            program = torch.export.export(module, tuple(real_like(t) for t in inputs), strict=False)
        except Exception as exc:
            problem = f"torch.fx failed ({fx_problem}) and torch.export failed ({one_line(exc, named=True)})"
        else:
            graph = exported_program_graph(program, source)
            graph.graph["notes"].append("traced with torch.export (torch.fx could not trace the module: "
                                        f"{fx_problem})")
            return graph
        return part_graph(module, _real_inputs(example_inputs, inputs), {}, source, problem)


def _structured(example_inputs: Any) -> bool:
    """Example inputs holding lists, tuples or dicts (a detector's list of images)."""
    return example_inputs is not None and any(isinstance(item, (tuple, list, dict))
                                              for item in example_args(example_inputs))


def _real_inputs(example_inputs: Any, inputs: tuple) -> tuple:
    """The example tensors themselves, or seeded random tensors shaped like the meta ``inputs``."""
    if example_inputs is not None:
        return example_args(example_inputs)
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn(t.shape, generator=generator).to(t.dtype) for t in inputs)
