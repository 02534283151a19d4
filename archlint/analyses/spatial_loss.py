"""Where a network discards spatial information: flattened dense heads and narrow global decisions.

Two queries, each a plain function of a :class:`~archlint.graph.Graph` plus the shared
analysis results it builds on, used by the pooling rules:

* :func:`flattened_dense_heads`: a feature map with spatial extent flattened straight into a
  dense layer (or read whole by one unpadded conv window, the fully-connected-as-conv form),
  with the dense layer's parameters now and after global average pooling.
* :func:`input_coverage`: how much of the input the summary receptive field spans when the
  network ends in a global decision (global pooling, flatten or a dense layer).

Which input positions a pooling window reads is :func:`archlint.analyses.window_coverage.window_coverage`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import EllipsisType
from dataclasses import dataclass
from dataclasses import fields as fields_of

import networkx as nx

from ..graph import CONV_OPS, Graph, Layer, Op
from .macs import Cost
from .receptive_field import ReceptiveField
from .shapes import whole_map_window
from .model_field import SummaryField, summary_field

__all__ = ["FlattenedDense", "flattened_dense_heads", "InputCoverage", "input_coverage"]

#: Op classes tested on every layer, as sets (a set test is a hash lookup; ``Op.X`` goes through the enum's hook).
_FLATTENING = frozenset({Op.FLATTEN, Op.RESHAPE})
#: Per-feature ops a flattened vector may pass through before reaching its dense layer.
_PER_FEATURE = frozenset({Op.ACTIVATION, Op.NORM})


@dataclass(frozen=True)
class FlattenedDense:
    """A dense layer fed by a flattened feature map.

    ``flatten`` is the layer that flattens the map; for a conv whose one unpadded window
    covers the whole map (``as_conv``), the conv itself, which is also ``dense``.
    ``params`` counts the dense layer's weight and bias; ``params_with_gap`` what it would
    hold if the map were globally average-pooled first (``channels * out_features + bias``).
    ``share`` is ``params`` over all parameters of the model.
    """

    flatten: str
    dense: str
    channels: int
    spatial: tuple[int, ...]
    in_features: int
    out_features: int
    params: int
    bias: int
    params_with_gap: int
    model_params: int
    as_conv: bool = False

    @property
    def positions(self) -> int:
        """Spatial positions flattened into each feature vector (``H * W``)."""
        return math.prod(self.spatial)

    @property
    def params_saved(self) -> int:
        return self.params - self.params_with_gap

    @property
    def share(self) -> float:
        return self.params / self.model_params if self.model_params else 0.0


def _flattened_map(layer: Layer) -> tuple[int, ...] | None:
    """The ``N, C, *spatial`` input of flatten/reshape ``layer`` if it turns it into ``N, features``."""
    if layer.perm:
        return None
    x = layer.input_shapes[0] if layer.input_shapes else None
    out = layer.output_shape
    if not x or len(x) < 3 or not out or len(out) != 2:
        return None
    if out[0] != x[0] or out[1] != math.prod(x[1:]):
        return None
    return x


def _whole_map_conv(layer: Layer, costs: Mapping[str, Cost], model_params: int) -> FlattenedDense | None:
    """Conv ``layer`` if it is standard (ungrouped) and its single unpadded window reads its whole input map."""
    x = layer.input_shapes[0] if layer.input_shapes else None
    if layer.groups != 1 or not layer.out_channels or not whole_map_window(layer):
        return None
    channels, spatial = x[1], tuple(x[2:])
    params = costs[layer.name].params
    weight = channels * math.prod(spatial) * layer.out_channels
    bias = max(params - weight, 0)
    return FlattenedDense(layer.name, layer.name, channels, spatial, channels * math.prod(spatial),
                          layer.out_channels, params, bias, channels * layer.out_channels + bias, model_params,
                          as_conv=True)


def flattened_dense_heads(graph: Graph, costs: Mapping[str, Cost]) -> list[FlattenedDense]:
    """Dense layers that read a flattened map with spatial extent, in graph order.

    A conv whose one unpadded window covers its whole input map (VGG's fully-connected
    layer written as a 7x7 conv on the 7x7 map) is such a dense layer too.

    Parameters
    ----------
    graph : Graph
    costs : mapping of layer name to Cost
        :func:`archlint.analyses.macs.costs` of ``graph`` (parameters per layer).

    Examples
    --------
    A 512x7x7 map flattened into 4096 units (VGG-16's ``classifier.0``):

    >>> from archlint.graph import Graph, Layer, Op
    >>> from archlint.analyses.macs import costs
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 512, 7, 7)))
    >>> g.add_node("flat", layer=Layer("flat", Op.FLATTEN, "Flatten", (1, 25088), ((1, 512, 7, 7),)))
    >>> g.add_node("fc", layer=Layer("fc", Op.LINEAR, "Gemm", (1, 4096), ((1, 25088),),
    ...            in_channels=25088, out_channels=4096, param_shapes=((4096, 25088), (4096,))))
    >>> g.add_edge("x", "flat", index=0); g.add_edge("flat", "fc", index=0)
    >>> head, = flattened_dense_heads(g, costs(g))
    >>> head.positions, head.params, head.params_with_gap, head.params_saved
    (49, 102764544, 2101248, 100663296)
    """
    model_params = sum(c.params for c in costs.values())
    heads = []
    for layer in graph.layers():
        op = layer.op
        if op in CONV_OPS:
            conv = _whole_map_conv(layer, costs, model_params)
            if conv is not None:
                heads.append(conv)
            continue
        if op not in _FLATTENING:
            continue
        x = _flattened_map(layer)
        if x is None:
            continue
        features = layer.output_shape[1]
        seen, frontier = set(), list(graph.successors(layer.name))
        while frontier:
            name = frontier.pop(0)
            if name in seen:
                continue
            seen.add(name)
            node = graph.layer(name)
            if node.op is Op.LINEAR and node.in_channels == features and node.out_channels:
                params = costs[name].params
                weight = features * node.out_channels
                bias = max(params - weight, 0)
                heads.append(FlattenedDense(layer.name, name, x[1], tuple(x[2:]), features, node.out_channels,
                                            params, bias, x[1] * node.out_channels + bias, model_params))
            elif node.op in _PER_FEATURE and node.output_shape == layer.output_shape:
                frontier.extend(graph.successors(name))
    return heads


@dataclass(frozen=True)
class InputCoverage(SummaryField):
    """The summary receptive field of a network that ends in a global decision.

    ``layer`` is the last layer with spatial extent (the report's summary field), ``head``
    the first layer after it whose output depends on the whole map (global pooling,
    flatten, dense). ``coverage`` is field size over input size per axis.
    """

    head: str
    head_op: str


def input_coverage(graph: Graph, fields: Mapping[str, ReceptiveField | None], *,
                   summary: SummaryField | None | EllipsisType = ...) -> InputCoverage | None:
    """Summary field of a network reduced to a global decision; ``None`` if there is none.

    ``summary`` is :func:`summary_field`'s answer when the caller has it already.

    ``None`` when no layer has a known spatial field, when nothing after the summary layer
    is global (dense prediction: segmentation, detection maps) or when the input size is
    unknown.

    Examples
    --------
    >>> from archlint.graph import Graph, Layer, Op
    >>> from archlint.analyses.receptive_field import receptive_fields
    >>> g = Graph(inputs=["x"])
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 3, 64, 64)))
    >>> g.add_node("c", layer=Layer("c", Op.CONV, "Conv", (1, 4, 64, 64), ((1, 3, 64, 64),), kernel=(3, 3),
    ...     stride=(1, 1), pads_begin=(1, 1), pads_end=(1, 1), dilation=(1, 1), in_channels=3, out_channels=4))
    >>> g.add_node("gap", layer=Layer("gap", Op.GLOBAL_POOL, "GlobalAveragePool", (1, 4, 1, 1),
    ...                               ((1, 4, 64, 64),)))
    >>> g.add_edge("x", "c", index=0); g.add_edge("c", "gap", index=0)
    >>> cov = input_coverage(g, receptive_fields(g))
    >>> cov.layer, cov.head, [int(s) for s in cov.size], cov.input_extent, cov.min_coverage, cov.covers
    ('c', 'gap', [3, 3], (64, 64), Fraction(3, 64), False)
    """
    if summary is ...:
        summary = summary_field(graph, fields)
    if summary is None:
        return None
    last = summary.layer
    downstream = nx.descendants(graph, last)
    head = next((layer.name for layer in graph.layers() if layer.name in downstream
                 and fields.get(layer.name) is not None and fields[layer.name].is_global), None)
    if head is None:
        return None
    if not summary.coverage:
        return None
    return InputCoverage(**{f.name: getattr(summary, f.name) for f in fields_of(summary)}, head=head,
                         head_op=graph.layer(head).op.value)
