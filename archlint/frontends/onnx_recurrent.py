"""Recurrent modules that a torch export wrote as per-step operations, read back as recurrent layers.

The dynamo ONNX exporter has no ONNX ``RNN`` for ``nn.RNN``: it writes the module as per-step
matrix products, and computes the first step's recurrent product (the zero initial state
times the recurrent weight, plus its bias) ahead of time into a constant. Read op by op, the
file then holds ``batch x hidden x hidden`` fewer MACs per stacked layer and direction than
the module computes, and its recurrent weight is read once per step.

The exporter's node metadata names the module's class (``pkg.torch.onnx.class_hierarchy``)
and the parameters each op reads (``pkg.torch.onnx.fx_node``: ``%p_rnn_weight_ih_l0``...). Where
the layers of one such module read one sequence from outside it (besides a given initial
state, which is not an edge, as on the PyTorch path) and name its input and recurrent
weights for every stacked layer and direction, they are replaced by the module's
recurrent layers, one per stacked layer as an ONNX ``RNN`` node or the PyTorch path gives
them, with the module's parameters: MACs and parameters are then the module's. Otherwise
the per-step layers stay, and a note says their counts are the file's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..graph import Graph, Layer, Op
from .naming import unique_names

__all__ = ["RecurrentGroup", "recurrent_groups", "reroll", "decomposed_note"]

#: Recurrent module classes named in ``pkg.torch.onnx.class_hierarchy`` -> (ONNX op type, gates).
_CLASSES = {"torch.nn.modules.rnn.RNN": ("RNN", 1), "torch.nn.modules.rnn.LSTM": ("LSTM", 4),
            "torch.nn.modules.rnn.GRU": ("GRU", 3)}
_PARAMETER = re.compile(r"%p_(\w+?)_(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?\b")


@dataclass
class RecurrentGroup:
    """The layers of one recurrent module written as per-step operations, and what names it."""

    path: str  #: the module's path
    cls: str  #: its class (``torch.nn.modules.rnn.RNN``)
    layers: list[str] = field(default_factory=list)
    #: (weight or bias, ih/hh/hr, stacked layer, reverse) of every parameter its ops read
    parameters: set[tuple[str, str, int, bool]] = field(default_factory=set)


def recurrent_groups(names: Sequence[str], paths: Sequence[str | None], ops: Sequence[Op],
                     metas: Sequence[dict[str, str]]) -> dict[str, RecurrentGroup]:
    """Module path -> its :class:`RecurrentGroup`, for the recurrent modules whose layers carry no
    recurrent op (layer ``names`` with their module ``paths``, ``ops`` and node ``metas``)."""
    groups: dict[str, RecurrentGroup] = {}
    with_recurrent_op: set[str | None] = set()
    for name, path, op, meta in zip(names, paths, ops, metas):
        if op is Op.RECURRENT:
            with_recurrent_op.add(path)
            continue
        hierarchy = meta.get("pkg.torch.onnx.class_hierarchy", "")
        if "torch.nn.modules.rnn." not in hierarchy:
            continue  # (every other layer, decided at once)
        cls = next((c for c in _CLASSES if f"'{c}'" in hierarchy), None)
        if cls is None or path is None:
            continue
        group = groups.setdefault(path, RecurrentGroup(path, cls))
        group.layers.append(name)
        prefix = path.replace(".", "_")
        for owner, kind, which, k, reverse in _PARAMETER.findall(meta.get("pkg.torch.onnx.fx_node", "")):
            if owner == prefix:
                group.parameters.add((kind, which, int(k), bool(reverse)))
    return {path: group for path, group in groups.items() if path not in with_recurrent_op}


def decomposed_note(group: RecurrentGroup) -> str:
    """Why the counts of a group that could not be read back are the file's."""
    kind = "nn." + group.cls.rsplit(".", 1)[1]
    return (f"{kind} '{group.path}' is written as per-step matrix products, not as a recurrent op: MACs and "
            "parameters are those the file holds (a product the exporter computed ahead of time from the zero "
            "initial state is not in the file, and the recurrent weights count once per step that reads them); "
            "lint the module or its torch.export program for the module's own counts")


def reroll(group: RecurrentGroup, inputs: Graph, nodes: list[tuple[str, dict]],
           edges: list[tuple[str, str, dict]], outputs: list[str]) -> bool:
    """Replace the group's layers in ``nodes``, ``edges`` and ``outputs`` (edited in place) by
    the module's recurrent layers; whether it could (see the module docstring). ``inputs`` is
    the graph being built, holding the model's input layers."""
    members = set(group.layers)
    layers = {name: inputs.layer(name) for name in inputs} | {name: data["layer"] for name, data in nodes}
    otype, gates = _CLASSES[group.cls]
    stacked = 1 + max((k for _, _, k, _ in group.parameters), default=-1)
    directions = 2 if any(reverse for *_, reverse in group.parameters) else 1
    weights = {(which, k, reverse) for kind, which, k, reverse in group.parameters if kind == "weight"}
    if len(weights) != 2 * stacked * directions:  # (checked first: metadata may claim any layer count)
        return False
    needed = {(which, k, reverse) for which in ("ih", "hh") for k in range(stacked)
              for reverse in (False, True)[:directions]}
    # every product of a cell (input or recurrent weight, any step) is gates x hidden wide
    first = [layers[name] for name in group.layers if layers[name].op is Op.LINEAR]
    if weights != needed or not first or not first[0].out_channels or first[0].out_channels % gates:
        return False  # projections (weight_hr), or not the whole module in view
    hidden = first[0].out_channels // gates

    def is_state(shape) -> bool:  # an initial hidden or cell state: (layers x directions, batch, hidden)
        return shape is not None and len(shape) == 3 and shape[0] == stacked * directions and shape[2] == hidden

    sources = {(u, data.get("output", 0)) for u, v, data in edges if v in members and u not in members}
    read = [(u, o) for u, o in sources if o != 0 or not is_state(layers[u].output_shape)]
    if len(read) != 1:
        return False  # several sequences, or one that looks like a state: keep the ops
    (source, source_output), = read
    sequence = layers[source].output_shape if source_output == 0 else None
    if not sequence or len(sequence) != 3:
        return False
    biased = any(kind == "bias" for kind, *_ in group.parameters)
    width = directions * hidden
    reserved = [name for name in layers if name not in members]
    names = unique_names([group.path] * stacked, reserved=reserved)
    model = layers[group.layers[0]]
    made = []
    for k, name in enumerate(names):
        size = sequence[2] if k == 0 else width
        shapes = [(gates * hidden, size), (gates * hidden, hidden)] + [(gates * hidden,)] * (2 if biased else 0)
        made.append((name, {"layer": Layer(
            name=name, op=Op.RECURRENT, source_op=otype, output_shape=(*sequence[:2], width),
            input_shapes=((*sequence[:2], size),), in_channels=size, out_channels=hidden, gates=gates,
            directions=directions, param_shapes=tuple(shapes) * directions, name_origin="module",
            source=model.source, defined_at=model.defined_at, construction=model.construction)}))
    at = next(i for i, (name, _) in enumerate(nodes) if name in members)
    nodes[:] = nodes[:at] + made + [item for item in nodes[at:] if item[0] not in members]
    last = names[-1]
    kept = [(u, v, d) for u, v, d in edges if u not in members and v not in members]
    chain = [(source, names[0], {"index": 0, "output": source_output})] + \
        [(a, b, {"index": 0, "output": 0}) for a, b in zip(names, names[1:])]
    readers = {}
    for u, v, d in edges:
        if u in members and v not in members and v not in readers:
            readers[v] = (last, v, {**d, "output": 0})
    edges[:] = kept + chain + list(readers.values())
    outputs[:] = list(dict.fromkeys(last if o in members else o for o in outputs))
    return True
