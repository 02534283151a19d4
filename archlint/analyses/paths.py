"""Depth along the graph's routes: plain chains of weighted layers and weighted depth per layer.

Only weighted layers (``WEIGHTED_OPS``: conv, transposed conv, linear, recurrent) count. A *plain
chain* is a run of weighted layers in series: between its first and last layer every
fork and every merge has branches of equal depth, so the gradient has no shorter route
around any part of it. Where branches of unequal depth split or join (an identity
shortcut, dense concatenation, an Inception-style block, a squeeze-excitation branch,
a second output) the chain ends. Both passes are linear in the size of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import WEIGHTED_OPS, Graph

__all__ = ["PlainChain", "plain_chains", "weighted_depths"]


@dataclass(frozen=True)
class PlainChain:
    """A run of ``depth`` weighted layers in series, from ``first`` to ``last``.

    ``layers`` lists the weighted layers along one route of the chain (where equal-depth
    parallel branches exist, the first branch in graph order).
    """

    first: str
    last: str
    depth: int
    layers: tuple[str, ...]


def _live(graph: Graph, order: list[str]) -> set[str]:
    """Layers on some route from a graph input to a graph output."""
    inputs = set(graph.graph.get("inputs") or [n for n in order if graph.in_degree(n) == 0])
    outputs = set(graph.graph.get("outputs") or [n for n in order if graph.out_degree(n) == 0])
    preds, succs = graph._pred, graph._succ  # plain dicts: these loops run once per layer
    forward: set[str] = set()
    for name in order:
        if name in inputs or not forward.isdisjoint(preds[name]):
            forward.add(name)
    backward: set[str] = set()
    for name in reversed(order):
        if name in outputs or not backward.isdisjoint(succs[name]):
            backward.add(name)
    return forward & backward


def plain_chains(graph: Graph) -> list[PlainChain]:
    """Every maximal plain chain of the graph, longest first (ties in graph order).

    Two linear passes. Backward: each layer gets the depth of the chain that starts
    after it; a layer whose output forks into branches that differ (in depth or in where
    their chain ends) is a *fork cut*. Forward: the same on the way in; a merge of
    differing branches, a graph input and the output of a fork cut start a new chain.
    Equal branches carry the chain on, so parallel branches of equal depth do not end it.

    Examples
    --------
    Three convs in series, then a residual block (identity + two convs) and a linear
    layer: the shortcut ends the first chain at its fork and the block's chain at its merge.

    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph(inputs=["x"], outputs=["fc"])
    >>> def add(name, op, *inputs):
    ...     g.add_node(name, layer=Layer(name, op, op.value))
    ...     for i, src in enumerate(inputs):
    ...         g.add_edge(src, name, index=i)
    >>> add("x", Op.INPUT)
    >>> add("c1", Op.CONV, "x"); add("c2", Op.CONV, "c1"); add("c3", Op.CONV, "c2")
    >>> add("b1", Op.CONV, "c3"); add("b2", Op.CONV, "b1"); add("sum", Op.ADD, "c3", "b2")
    >>> add("fc", Op.LINEAR, "sum")
    >>> [(c.first, c.last, c.depth) for c in plain_chains(g)]
    [('c1', 'c3', 3), ('b1', 'b2', 2), ('fc', 'fc', 1)]
    """
    order = graph.order()
    live = _live(graph, order)
    outputs = set(graph.graph.get("outputs") or ())
    weighted = {layer.name for layer in graph.layers() if layer.op in WEIGHTED_OPS}
    preds, succs = graph._pred, graph._succ  # plain dicts: these loops run once per layer

    # backward pass: (depth of the chain from here on, where it ends)
    after: dict[str, tuple[int, str]] = {}
    fork_cuts: set[str] = set()
    for name in reversed(order):
        if name not in live:
            continue
        consumers = succs[name]
        if len(consumers) == 1 and name not in outputs:  # the usual layer in series: one route on
            (consumer,) = consumers
            base = after[consumer] if consumer in live else (0, name)
        else:
            ahead = [after[s] for s in consumers if s in live]
            if name in outputs:
                ahead.append((0, name))  # a route that ends here, at a model output
            if ahead and ahead.count(ahead[0]) == len(ahead):
                base = ahead[0]
            else:
                base = (0, name)
                if len(ahead) > 1:
                    fork_cuts.add(name)
        if name in weighted:
            after[name] = (base[0] + 1, base[1] if base[0] else name)
        else:
            after[name] = base

    # forward pass: state (depth so far, first layer or cut marker, last weighted layer)
    out_state: dict[str, tuple[int, str, str | None]] = {}
    runs: dict[str, tuple[int, str]] = {}
    previous: dict[str, str | None] = {}
    for name in order:
        if name not in live:
            continue
        producers = preds[name]
        if len(producers) == 1:  # in series
            (producer,) = producers
            state = out_state[producer] if producer in live else (0, name, None)
        else:
            behind = [out_state[p] for p in producers if p in live]
            if behind and all(b[:2] == behind[0][:2] for b in behind):
                state = behind[0]
            else:
                state = (0, name, None)
        if name in weighted:
            depth = state[0] + 1
            first = state[1] if state[0] else name
            runs[name] = (depth, first)
            previous[name] = state[2] if state[0] else None
            state = (depth, first, name)
        out_state[name] = (0, name, None) if name in fork_cuts else state

    best: dict[str, str] = {}
    for name, (depth, first) in runs.items():  # graph order: the first of equally deep ends wins
        if first not in best or depth > runs[best[first]][0]:
            best[first] = name
    chains = []
    for first, last in best.items():
        route = [last]
        while previous[route[-1]] is not None:
            route.append(previous[route[-1]])
        chains.append(PlainChain(first, last, runs[last][0], tuple(reversed(route))))
    # ``best`` holds the chains by first layer in graph order: a stable sort by depth keeps that order for ties
    chains.sort(key=lambda c: -c.depth)
    return chains


def weighted_depths(graph: Graph) -> dict[str, int]:
    """Weighted layers on the longest route from a graph input to each layer (itself included).

    Examples
    --------
    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph()
    >>> for name, op in (("x", Op.INPUT), ("conv", Op.CONV), ("pool", Op.MAX_POOL), ("fc", Op.LINEAR)):
    ...     g.add_node(name, layer=Layer(name, op, op.value))
    >>> g.add_edges_from([("x", "conv"), ("conv", "pool"), ("pool", "fc"), ("x", "fc")])
    >>> weighted_depths(g)
    {'x': 0, 'conv': 1, 'pool': 1, 'fc': 2}
    """
    depths: dict[str, int] = {}
    preds = graph._pred
    for layer in graph.layers():
        producers = preds[layer.name]
        if len(producers) == 1:
            (producer,) = producers
            base = depths[producer]
        else:
            base = max([depths[p] for p in producers], default=0)
        depths[layer.name] = base + 1 if layer.op in WEIGHTED_OPS else base
    return depths
