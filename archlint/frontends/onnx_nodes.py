"""What every pass over an ONNX graph asks of a node: the subgraphs it holds and its op's full name.

An ONNX node can hold whole graphs in its attributes (the branches of an ``If``, the body of
a ``Loop`` or ``Scan``); the quantized-op rewrite, branch inlining and the graph builder each
walk them. An op is named by its type alone in the standard domain and by
``domain::op_type`` elsewhere (``com.microsoft::QGemm``), in reports as in notes.
"""

from __future__ import annotations

import onnx

__all__ = ["STANDARD_DOMAINS", "subgraphs", "qualified_op", "op_types"]

#: The domain of the standard ONNX ops, as files write it.
STANDARD_DOMAINS = ("", "ai.onnx")

_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
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


def op_types(graph: onnx.GraphProto) -> set[str]:
    """The op types (without domain) of ``graph``'s nodes and of the nodes in its subgraphs, at any depth."""
    found: set[str] = set()
    pending = [graph]
    while pending:
        nodes = pending.pop().node
        found.update([node.op_type for node in nodes])
        for node in nodes:
            if node.attribute:
                pending.extend(subgraphs(node))
    return found
