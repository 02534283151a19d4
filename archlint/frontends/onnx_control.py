"""Inline the branch of each ``If`` node that archlint analyses (a rewrite around shape inference).

An ``If`` holds two subgraphs and runs one of them. When its condition is a constant, or
is computed from constants and tensor shapes alone (a legacy export's "squeeze if this
size is 1"), the branch it selects is inlined once the condition's value is known. When
the condition is computed from the inputs' values, archlint cannot know which branch runs:
it inlines the larger one (more nodes, nested subgraphs included; the then-branch on a
tie) and says so in a note naming the node and both branches. ``Loop`` and ``Scan`` bodies
run a number of times known only at run time; they stay as they are, and the graph
builder lists the ops inside them as not understood.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

import numpy as np
import onnx

from .onnx_nodes import STANDARD_DOMAINS, subgraphs

__all__ = ["inline_branches"]


def inline_branches(graph: onnx.GraphProto, notes: list[str], values: Mapping[str, np.ndarray],
                    constant_names: Container[str], final: bool = False) -> bool:
    """Inline the ``If`` nodes of ``graph`` whose branch can be chosen now; whether any was.

    ``values`` holds the known values of constant tensors and ``constant_names`` the names of
    all tensors that do not depend on the inputs' values. An ``If`` whose condition is such a
    tensor, its value not yet known, waits for a later call, unless ``final`` (its value could
    not be computed): then the larger branch is taken, as for a data-dependent condition.
    """
    nodes: list[onnx.NodeProto] = []
    conditions: list[str] = []
    names: set[str] | None = None
    for node in graph.node:
        if node.op_type != "If" or node.domain not in STANDARD_DOMAINS:
            nodes.append(node)
            continue
        branch = _chosen_branch(node, values, constant_names, final, notes)
        if branch is None:
            nodes.append(node)
            continue
        names = _defined_names(graph) if names is None else names
        conditions.extend(node.input[:1])
        renamed = _rename_clashes(branch, names)
        graph.initializer.extend(branch.initializer)
        nodes.extend(branch.node)
        for inner, outer in zip(branch.output, node.output):
            if outer:
                nodes.append(onnx.helper.make_node("Identity", [renamed.get(inner.name, inner.name)], [outer],
                                                   name=f"{node.name}/{inner.name}" if node.name else ""))
    if not conditions:
        return False
    del graph.node[:]
    graph.node.extend(_without_unread(nodes, conditions, {o.name for o in graph.output}))
    return True


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


def _chosen_branch(node: onnx.NodeProto, values: Mapping[str, np.ndarray], constant_names: Container[str],
                   final: bool, notes: list[str]) -> onnx.GraphProto | None:
    branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
    label = f"'If' node '{node.name}'" if node.name else "an 'If' node"
    if len(branches) != 2 or not node.input:
        raise ValueError(f"{label} lacks a condition, a then_branch or an else_branch")
    condition = values.get(node.input[0])
    if condition is not None and np.size(condition) == 1:
        return branches["then_branch" if bool(np.ravel(condition)[0]) else "else_branch"]
    if node.input[0] in constant_names and not final:
        return None  # computed from shapes: known after inference
    sizes = {name: _size(g) for name, g in branches.items()}
    chosen = "then_branch" if sizes["then_branch"] >= sizes["else_branch"] else "else_branch"
    other = "else_branch" if chosen == "then_branch" else "then_branch"
    why = "could not be computed" if node.input[0] in constant_names else "depends on the input's values"
    which = "the larger" if sizes[chosen] > sizes[other] else "as large as the other"
    notes.append(f"{label}: its condition {why}; archlint analyses its {chosen} "
                 f"({_nodes(sizes[chosen])}, {which}), not its {other} ({_nodes(sizes[other])})")
    return branches[chosen]


def _nodes(count: int) -> str:
    return f"{count} node{'s' if count != 1 else ''}"


def _size(graph: onnx.GraphProto) -> int:
    """Nodes in ``graph``, those in nested subgraphs included."""
    return sum(1 + sum(_size(sub) for sub in subgraphs(node)) for node in graph.node)


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
