"""What every pass over an ONNX graph asks of a node: its fields, the subgraphs it holds and its op's full name.

Reading a protobuf field costs about as much as a dict lookup and a function call, and
more for repeated fields (a list and a wrapper per element); the file checks, shape
folding and the graph builder each read most fields of every node. :func:`read_nodes`
copies them once into plain Python (:class:`NodeFields`).

An ONNX node can hold whole graphs in its attributes (the branches of an ``If``, the body of
a ``Loop`` or ``Scan``); the quantized-op rewrite, branch inlining and the graph builder each
walk them. An op is named by its type alone in the standard domain and by
``domain::op_type`` elsewhere (``com.microsoft::QGemm``), in reports as in notes.
"""

from __future__ import annotations

from typing import NamedTuple

import onnx

__all__ = ["STANDARD_DOMAINS", "NodeFields", "read_nodes", "subgraphs", "qualified_op", "op_types"]

#: The domain of the standard ONNX ops, as files write it.
STANDARD_DOMAINS = ("", "ai.onnx")

_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS


class NodeFields(NamedTuple):
    """The fields of one ``NodeProto``, named as there (``meta`` is its ``metadata_props`` as a dict)."""

    name: str
    op_type: str
    domain: str
    input: list[str]
    output: list[str]
    doc_string: str
    attribute: list[onnx.AttributeProto]
    meta: dict[str, str]


def read_nodes(graph: onnx.GraphProto) -> list[NodeFields]:
    """:class:`NodeFields` of each node of ``graph``, in order.

    Valid while the nodes are: a pass that rewrites them reads them again.
    """
    make = tuple.__new__  # NamedTuple's own __new__ is a Python function: several times slower
    found = []
    for node in graph.node:
        props = node.metadata_props
        # a slice copies a repeated field into a list at C speed; list() iterates it in Python
        found.append(make(NodeFields, (
            node.name, node.op_type, node.domain, node.input[:], node.output[:], node.doc_string,
            node.attribute[:], {p.key: p.value for p in props} if props else {})))
    return found


def subgraphs(node: onnx.NodeProto | NodeFields) -> list[onnx.GraphProto]:
    """The graphs held in ``node``'s attributes, in attribute order (empty for most nodes)."""
    found: list[onnx.GraphProto] = []
    for attr in node.attribute:
        kind = attr.type
        if kind == _GRAPH:
            found.append(attr.g)
        elif kind == _GRAPHS:
            found.extend(attr.graphs)
    return found


def qualified_op(domain: str, op_type: str) -> str:
    """``op_type`` for a standard op, ``domain::op_type`` for any other.

    Examples
    --------
    >>> qualified_op("ai.onnx", "Conv"), qualified_op("com.microsoft", "QGemm")
    ('Conv', 'com.microsoft::QGemm')
    """
    return op_type if domain in STANDARD_DOMAINS else f"{domain}::{op_type}"


def op_types(nodes: list[NodeFields]) -> set[str]:
    """The op types (without domain) of ``nodes`` and of the nodes in their subgraphs, at any depth."""
    found = {node.op_type for node in nodes}
    pending = [graph for node in nodes if node.attribute for graph in subgraphs(node)]
    while pending:
        inner = pending.pop().node
        found.update([node.op_type for node in inner])
        for node in inner:
            if node.attribute:
                pending.extend(subgraphs(node))
    return found
