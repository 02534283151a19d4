"""Inline the branch of each ``If`` node that archlint analyses (a rewrite before shape inference).

An ``If`` holds two subgraphs and runs one of them. When its condition is a constant, the
branch it selects is inlined. When the condition is computed from the inputs' values,
archlint cannot know which branch runs: it inlines the larger one (more nodes, nested
subgraphs included; the then-branch on a tie) and says so in a note naming the node and
both branches. ``Loop`` and ``Scan`` bodies run a number of times known only at run time;
they stay as they are, and the graph builder lists the ops inside them as not understood.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["inline_branches"]


def inline_branches(graph: onnx.GraphProto, notes: list[str]) -> None:
    """Replace every ``If`` in ``graph`` (and in the branches it inlines) by one of its branches."""
    if not any(n.op_type == "If" and n.domain in ("", "ai.onnx") for n in graph.node):
        return
    names = _defined_names(graph)
    constants = _constant_values(graph)
    nodes: list[onnx.NodeProto] = []
    conditions: list[str] = []
    for node in graph.node:
        if node.op_type != "If" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        conditions.extend(node.input[:1])
        branch = _chosen_branch(node, constants, notes)
        inline_branches(branch, notes)
        renamed = _rename_clashes(branch, names)
        graph.initializer.extend(branch.initializer)
        nodes.extend(branch.node)
        for inner, outer in zip(branch.output, node.output):
            if outer:
                nodes.append(onnx.helper.make_node("Identity", [renamed.get(inner.name, inner.name)], [outer],
                                                   name=f"{node.name}/{inner.name}" if node.name else ""))
        constants.update(_constant_values(branch))
    del graph.node[:]
    graph.node.extend(_without_unread(nodes, conditions, {o.name for o in graph.output}))


def _without_unread(nodes: list[onnx.NodeProto], names: list[str], outputs: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` without those that computed only ``names`` (the conditions), now read by nothing."""
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    producer = {o: n for n in nodes for o in n.output if o}
    dropped: set[int] = set()
    pending = list(names)
    while pending:
        node = producer.get(pending.pop())
        if node is None or id(node) in dropped or any(readers.get(o) or o in outputs for o in node.output if o):
            continue
        dropped.add(id(node))
        for name in node.input:
            readers[name] -= 1
            pending.append(name)
    return [n for n in nodes if id(n) not in dropped]


def _chosen_branch(node: onnx.NodeProto, constants: dict[str, np.ndarray], notes: list[str]) -> onnx.GraphProto:
    branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
    if len(branches) != 2:
        raise ValueError(f"'If' node '{node.name}' lacks a then_branch or else_branch")
    label = f"'If' node '{node.name}'" if node.name else "an 'If' node"
    condition = constants.get(node.input[0]) if node.input else None
    if condition is not None and condition.size == 1:
        chosen = "then_branch" if bool(condition.reshape(())) else "else_branch"
        notes.append(f"{label} has a constant condition: its {chosen} is analysed")
        return branches[chosen]
    sizes = {name: _size(g) for name, g in branches.items()}
    chosen = "then_branch" if sizes["then_branch"] >= sizes["else_branch"] else "else_branch"
    other = "else_branch" if chosen == "then_branch" else "then_branch"
    notes.append(f"{label} picks a branch from a value known only at run time: archlint analyses its "
                 f"{chosen} ({_nodes(sizes[chosen])}, the larger), not its {other} ({_nodes(sizes[other])})")
    return branches[chosen]


def _nodes(count: int) -> str:
    return f"{count} node{'s' if count != 1 else ''}"


def _size(graph: onnx.GraphProto) -> int:
    """Nodes in ``graph``, those in nested subgraphs included."""
    total = 0
    for node in graph.node:
        total += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                total += _size(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                total += sum(_size(g) for g in attr.graphs)
    return total


def _defined_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.output)
    return names


def _rename_clashes(branch: onnx.GraphProto, names: set[str]) -> dict[str, str]:
    """Give tensors the branch defines a fresh name where the enclosing graph uses it already.

    ONNX forbids such shadowing, but a file may do it anyway; inlined, it would rewire the model.
    """
    renamed: dict[str, str] = {}
    defined = [t.name for t in branch.initializer] + [o for n in branch.node for o in n.output if o]
    for name in defined:
        if name in names:
            fresh, k = f"{name}__branch", 1
            while fresh in names:
                fresh, k = f"{name}__branch{k}", k + 1
            renamed[name] = fresh
        names.add(renamed.get(name, name))
    if renamed:
        for tensor in branch.initializer:
            tensor.name = renamed.get(tensor.name, tensor.name)
        for node in branch.node:
            for field in (node.input, node.output):
                for i, name in enumerate(field):
                    field[i] = renamed.get(name, name)
    return renamed


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of the one-element initializers and ``Constant`` nodes of ``graph`` (conditions)."""
    values: dict[str, np.ndarray] = {}
    for tensor in graph.initializer:
        if list(tensor.dims) in ([], [1]):
            try:
                values[tensor.name] = numpy_helper.to_array(tensor)
            except Exception:
                pass
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and list(attr.t.dims) in ([], [1]):
                    try:
                        values[node.output[0]] = numpy_helper.to_array(attr.t)
                    except Exception:
                        pass
    return values
