"""A model that cannot be traced whole, linted part by part.

Detection models decide on tensor values (boxes kept by non-maximum suppression, proposals
per image), which no tracer can follow, and take lists of images. Their largest submodules
usually trace exactly. The model runs once, eagerly, on the example inputs; every submodule
records the inputs of its first call. Then, from the root down, each module that ran is
traced with the inputs it received (tensors, or lists, tuples and dicts of them, shaped as
recorded, on meta tensors); a module that traces is a covered part, one that does not is
split into its children. Parts are joined where one part's input is the very tensor another
part produced (the backbone's feature maps feeding the RPN head), so fields and shapes flow
across them; other part inputs become graph inputs named ``PART.input``. The report names the
covered parts and the modules (and the own code of partly covered modules) left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..errors import ModelLoadError, one_line
from ..graph import Graph, Layer, Op

__all__ = ["part_graph"]

_PLAIN = (int, float, bool, str, type(None))


@dataclass
class _Call:
    """The first call of one module in the eager pass."""

    args: tuple
    kwargs: dict
    output: Any
    order: int
    count: int = 1


@dataclass
class _Part:
    path: str
    graph: Graph
    output_names: list[str | None]
    call: _Call
    input_names: list[str] = field(default_factory=list)


def _record_calls(model: nn.Module, args: tuple, kwargs: dict, source: str) -> dict[str, _Call]:
    """Run ``model`` once and keep each module's first call (inputs and output)."""
    calls: dict[str, _Call] = {}
    handles = []

    def hook_for(path):
        def hook(module, args, kwargs, output):
            if path in calls:
                calls[path].count += 1
            else:
                calls[path] = _Call(args, dict(kwargs), output, len(calls))
        return hook

    for path, module in model.named_modules():
        handles.append(module.register_forward_hook(hook_for(path), with_kwargs=True))
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    except Exception as exc:
        raise ModelLoadError(source, f"cannot trace the module, and it does not run on the example inputs "
                                     f"either ({one_line(exc, named=True)})") from None
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _wrapper(model: nn.Module, path: str, flat: list, spec, positions: list[int]) -> nn.Module:
    """A module whose forward takes the part's tensors one by one and calls the part; the part
    sits at its own path, so layers keep the model's module paths."""
    names = [f"input_{i}" for i in range(len(positions))]
    items = ", ".join(names) + ("," if len(names) == 1 else "")
    namespace: dict[str, Any] = {}
    exec(f"def forward(self, {', '.join(names)}):\n    return self.run_part(({items}))\n", namespace)

    def run_part(self, tensors):
        leaves = list(flat)
        for i, t in zip(positions, tensors):
            leaves[i] = t
        args, kwargs = tree_unflatten(leaves, spec)
        return self.get_submodule(path)(*args, **kwargs)

    root = type("Part", (nn.Module,), {"forward": namespace["forward"], "run_part": run_part})()
    holder, parts = root, path.split(".")
    for name in parts[:-1]:
        child = nn.Module()
        holder.add_module(name, child)
        holder = child
    holder.add_module(parts[-1], model.get_submodule(path))
    return root


def _trace_part(model: nn.Module, path: str, call: _Call, source: str) -> _Part | None:
    from .torch_convert import traced_graph
    from .torch_trace import FxTracer

    flat, spec = tree_flatten((call.args, call.kwargs))
    if any(not isinstance(v, (torch.Tensor, *_PLAIN)) for v in flat):
        return None  # inputs of classes archlint cannot rebuild (an ImageList, boxes in a custom object)
    positions = [i for i, v in enumerate(flat) if isinstance(v, torch.Tensor)]
    if not positions:
        return None
    wrapper = _wrapper(model, path, flat, spec, positions)
    inputs = tuple(torch.empty(flat[i].shape, dtype=flat[i].dtype, device="meta") for i in positions)
    try:
        gm = FxTracer.trace_module(wrapper)
        graph, output_names = traced_graph(gm, inputs, f"{source}:{path}")
    except Exception:  # data-dependent control flow, unsupported inputs...
        return None
    return _Part(path, graph, output_names, call, [f"input_{i}" for i in range(len(positions))])


def _parts(model: nn.Module, calls: dict[str, _Call], source: str) -> list[_Part]:
    """Largest traceable modules that ran, top-down, in the order they first ran."""
    covered: list[_Part] = []

    def visit(path: str, module: nn.Module) -> None:
        call = calls.get(path)
        if call is None:
            return
        part = _trace_part(model, path, call, source) if path else None
        if part is not None:
            covered.append(part)
            return
        for name, child in module.named_children():
            visit(f"{path}.{name}" if path else name, child)

    visit("", model)
    return sorted(covered, key=lambda p: p.call.order)


def _uncovered(model: nn.Module, calls: dict[str, _Call], covered: set[str]) -> tuple[list[str], list[str]]:
    """Topmost modules that ran with nothing covered inside, and modules partly covered (their
    own code outside the covered submodules is not)."""
    left_out, partly = [], []

    def visit(path: str, module: nn.Module) -> bool:
        """Whether something inside ``path`` is covered."""
        if path in covered:
            return True
        inside = [visit(f"{path}.{n}" if path else n, c) for n, c in module.named_children()]
        if any(inside):
            partly.append(path or "(the model itself)")
            for (name, _), is_covered in zip(module.named_children(), inside):
                child = f"{path}.{name}" if path else name
                if not is_covered and child in calls:
                    left_out.append(child)
            return True
        return False

    if not visit("", model):
        return [], []
    return sorted(set(left_out), key=lambda p: calls[p].order), partly


def part_graph(model: nn.Module, args: tuple, kwargs: dict, source: str, problem: str) -> Graph:
    """One graph holding the traceable parts of ``model`` run on real ``args``/``kwargs``.

    Raises
    ------
    ModelLoadError
        The model does not run on the inputs, or no part of it traces.
    """
    calls = _record_calls(model, args, kwargs, source)
    parts = _parts(model, calls, source)
    if not parts:
        raise ModelLoadError(source, f"cannot trace the module ({problem}), nor any of its submodules")
    produced: dict[int, str] = {}  # id of a tensor a part returned -> the layer that made it
    model_inputs = {id(t): f"input_{i}" for i, t in enumerate(tree_flatten((args, kwargs))[0])
                    if isinstance(t, torch.Tensor)}
    merged = Graph(model=source, format="torch", notes=[], unsupported_ops=Counter(), inputs=[], outputs=[],
                   shared_params=0)
    for part in parts:
        _merge(merged, part, produced, model_inputs)
    # a part's output that a later part reads is no output of the model
    merged.graph["outputs"] = [o for o in merged.graph["outputs"] if merged.out_degree(o) == 0]
    covered = {p.path for p in parts}
    left_out, partly = _uncovered(model, calls, covered)
    _describe(merged, model, parts, left_out, partly, problem)
    return merged


def _merge(merged: Graph, part: _Part, produced: dict[int, str], model_inputs: dict[int, str]) -> None:
    graph = part.graph
    tensors = [t for t in tree_flatten((part.call.args, part.call.kwargs))[0] if isinstance(t, torch.Tensor)]
    rename: dict[str, str] = {}
    single = len(tensors) == 1
    for name, tensor in zip(part.input_names, tensors):
        if name not in graph:
            continue  # an input the part does not read
        source = produced.get(id(tensor))
        if source is None:
            source = model_inputs.get(id(tensor)) or (f"{part.path}.input" if single
                                                      else f"{part.path}.{name.replace('input_', 'input')}")
            if source not in merged:
                layer = graph.layer(name)
                merged.add_node(source, layer=Layer(source, Op.INPUT, "input", layer.output_shape,
                                                    name_origin="node"))
                merged.graph["inputs"].append(source)
        rename[name] = source
    for node in graph.order():
        if node in rename:
            continue
        target = node if node not in merged else f"{part.path}/{node}"
        rename[node] = target
        layer = graph.layer(node)
        merged.add_node(target, layer=layer if target == node else _renamed(layer, target))
    for u, v, data in graph.edges(data=True):
        merged.add_edge(rename[u], rename[v], **data)
    outputs = [rename.get(n) for n in part.output_names]
    flat_out = tree_flatten(part.call.output)[0]
    for tensor, name in zip(flat_out, outputs):
        if isinstance(tensor, torch.Tensor) and name is not None:
            produced[id(tensor)] = name
    merged.graph["outputs"].extend(rename[o] for o in graph.graph["outputs"] if rename[o] not in
                                   merged.graph["outputs"])
    merged.graph["unsupported_ops"].update(graph.graph.get("unsupported_ops", {}))
    merged.graph["shared_params"] += graph.graph.get("shared_params", 0)
    merged.graph["notes"].extend(f"{part.path}: {note}" for note in graph.graph.get("notes", []))


def _renamed(layer: Layer, name: str) -> Layer:
    from dataclasses import replace

    return replace(layer, name=name)


def _describe(merged: Graph, model: nn.Module, parts: list[_Part], left_out: list[str], partly: list[str],
              problem: str) -> None:
    """Notes naming the covered parts and what is left out."""
    covered = ", ".join(p.path for p in parts)
    params_out = sum(p.numel() for path in left_out for p in model.get_submodule(path).parameters())
    notes = [f"linted part by part: the whole model cannot be traced ({problem}); covered parts, each traced "
             f"with the inputs it received in one eager run on the example inputs: {covered}"]
    if left_out:
        counted = f"their MACs and {params_out:,} parameters are" if params_out else "their MACs are"
        notes.append(f"not covered ({counted} not counted): {', '.join(left_out)}")
    if partly:
        notes.append("also not covered: the operations outside the covered submodules in "
                     + ", ".join(partly))
    repeated = [f"{p.path} x{p.call.count}" for p in parts if p.call.count > 1]
    if repeated:
        notes.append("parts called more than once are covered for their first call only: " + ", ".join(repeated))
    merged.graph["notes"][:0] = notes
