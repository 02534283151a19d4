"""Layer matching for the model diff: which HEAD layer is which BASE layer.

Both graphs are canonical (:mod:`archlint.canonical`: Pads folded into windows, single-input
``Concat`` spliced out, BatchNorm folded); on top of that, :func:`match_view` merges a concat
feeding only another concat into it (the legacy exporter merges Inception's nested
``torch.cat`` calls, dynamo keeps them), and ``Flatten`` and ``Reshape`` are one op class
(:func:`archlint.engine.baseline.op_class`).

:func:`match_layers` pairs graph inputs by position (``input.1`` vs ``x``) and layers named by
their module path by name, so that a re-export with the other torch exporter matches whole.
The rest (op-named layers such as ``Flatten``/``Reshape``, ``GlobalAveragePool``/``ReduceMean``,
and module-named layers an exporter renamed) match structurally, in topological order: same
op class and the same (already matched) producers; failing that, op-named layers with the
same scope and op class match in order. Module-named layers only match structurally when
their window and shape are the same.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .engine.baseline import canonical_layer, op_class
from .graph import Graph, Layer, Op
from .report import Report

__all__ = ["MatchView", "match_layers", "match_view"]


def _op_class(layer: Layer) -> str:
    return op_class(layer.op.value)


@dataclass
class MatchView:
    """A graph with nested concats merged: kept layers and their producers."""

    graph: Graph
    report: Report
    order: list[str]
    producers: dict[str, list[str]]
    alias: dict[str, str]  # removed layer -> the kept layer standing for it

    def layer(self, name: str) -> Layer:
        return self.graph.layer(name)


def match_view(graph: Graph, report: Report) -> MatchView:
    """``graph`` (linted into ``report``) with every concat that feeds only another concat merged into it."""
    alias: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    producers: dict[str, list[str]] = {}
    for name in graph.order():
        layer = graph.layer(name)
        ins = [resolve(p) for p in graph.inputs_of(name)]
        if layer.op is Op.CONCAT:
            merged = []
            for p in ins:
                inner = graph.layer(p) if p in graph else None
                consumers = list(graph.successors(p)) if p in graph else []
                if inner is not None and inner.op is Op.CONCAT and p in producers and consumers == [name] \
                        and p not in graph.graph.get("outputs", ()):
                    merged.extend(producers.pop(p))
                    alias[p] = name
                else:
                    merged.append(p)
            ins = merged
        producers[name] = ins
    order = [n for n in graph.order() if n in producers]
    return MatchView(graph, report, order, producers, alias)


# --- matching -------------------------------------------------------------------------------

def _structure(layer: Layer) -> tuple:
    return (_op_class(layer), layer.kernel, layer.stride, layer.pads_begin, layer.pads_end, layer.dilation,
            layer.groups, layer.output_shape)


def _named(layer: Layer) -> bool:
    return layer.name_origin == "module"


def _canonical(name: str, layer: Layer) -> str:
    return canonical_layer(name, layer.op.value, layer.source_op)


def match_layers(base: MatchView, head: MatchView) -> dict[str, str]:
    """HEAD layer name -> BASE layer name, for the layers that correspond (see the module docstring)."""
    match: dict[str, str] = {}
    used: set[str] = set()

    def pair(h: str, b: str) -> None:
        match[h] = b
        used.add(b)

    for h, b in zip(head.graph.graph.get("inputs", ()), base.graph.graph.get("inputs", ())):
        if h in head.producers and b in base.producers:
            pair(h, b)
    base_names = set(base.producers)
    for h in head.order:
        hl = head.layer(h)
        if h not in match and _named(hl) and h in base_names and h not in used and \
                _named(base.layer(h)) and _op_class(base.layer(h)) == _op_class(hl):
            pair(h, h)
    # structural: same op class and the same matched producers; each candidate list is a queue
    # in BASE order, keyed by everything a HEAD layer filters on, so each lookup is O(1) amortized
    # (identical parallel branches share their producers: filtering one list per layer was quadratic)
    queues: dict[tuple, deque[str]] = {}
    for b in base.order:
        if b not in used:
            bl = base.layer(b)
            inputs = (_op_class(bl), tuple(base.producers[b]))
            structure, canon = _structure(bl), _canonical(b, bl)
            keys = [("structure", inputs, structure, canon), ("structure", inputs, structure)]
            if not _named(bl):
                keys += [("op-named", inputs, canon), ("op-named", inputs)]
            for key in keys:
                queues.setdefault(key, deque()).append(b)

    def first_unused(*key) -> str | None:
        queue = queues.get(key)
        while queue and queue[0] in used:
            queue.popleft()
        return queue[0] if queue else None

    for h in head.order:
        if h in match:
            continue
        hl = head.layer(h)
        mapped = tuple(match.get(p) for p in head.producers[h])
        if None in mapped:
            continue
        inputs = (_op_class(hl), mapped)
        # an op-named HEAD layer takes an op-named BASE layer while any is left, else one of the same
        # structure; among those, preferably one of the same canonical name
        if not _named(hl) and first_unused("op-named", inputs) is not None:
            key = ("op-named", inputs)
        else:
            key = ("structure", inputs, _structure(hl))
        b = first_unused(*key, _canonical(h, hl))
        if b is None:
            b = first_unused(*key)
        if b is not None:
            pair(h, b)
    # op-named leftovers: same scope and op class, in topological order
    groups: dict[str, deque[str]] = {}
    for b in base.order:
        bl = base.layer(b)
        if b not in used and not _named(bl) and bl.op is not Op.INPUT:
            groups.setdefault(_canonical(b, bl), deque()).append(b)
    for h in head.order:
        hl = head.layer(h)
        if h in match or _named(hl) or hl.op is Op.INPUT:
            continue
        queue = groups.get(_canonical(h, hl))
        while queue and queue[0] in used:
            queue.popleft()
        if queue:
            pair(h, queue.popleft())
    return match
