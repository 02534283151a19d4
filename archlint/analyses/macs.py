"""Multiply-accumulates (MACs), parameters and other operation counts per layer.

Headline MACs count the multiply-accumulates of convolutions and matrix products only:
the convention torchvision publishes ("GFLOPS" in its weight tables are these MACs) and
``torch.utils.flop_counter.FlopCounterMode`` agrees with (its FLOPs are 2 x MACs). All
other arithmetic is counted separately as ``other_ops``, one operation per output
element (per window element for pooling), with a ``category`` naming what it is.
Parameters are counted per use: a weight shared by two layers counts twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..graph import Graph, Layer, Op

__all__ = ["Cost", "costs", "layer_macs", "OTHER_CATEGORIES"]

#: Labels of the non-headline operation counts, in report order.
OTHER_CATEGORIES = ("bias", "pooling", "activation", "elementwise", "normalization", "resize")
_CATEGORY = {Op.ACTIVATION: "activation", Op.ADD: "elementwise", Op.MUL: "elementwise",
             Op.NORM: "normalization", Op.RESIZE: "resize"}


@dataclass(frozen=True)
class Cost:
    """Cost of one layer: headline MACs, parameters and labelled other operations."""

    macs: int
    params: int
    other_ops: int = 0
    category: str = ""


def layer_macs(layer: Layer) -> int:
    """Multiply-accumulates of a conv, transposed conv or matrix product (0 for other ops).

    Examples
    --------
    The first conv of ResNet-50 (3->64 channels, 7x7, 112x112 output):

    >>> from archlint.graph import Layer, Op
    >>> conv = Layer("conv1", Op.CONV, "Conv", (1, 64, 112, 112), ((1, 3, 224, 224),),
    ...              kernel=(7, 7), groups=1, in_channels=3, out_channels=64)
    >>> layer_macs(conv)
    118013952
    """
    out = layer.output_shape
    if layer.op is Op.CONV:
        return math.prod(out) * (layer.in_channels // layer.groups) * math.prod(layer.kernel)
    if layer.op is Op.CONV_TRANSPOSE:
        x = layer.input_shapes[0]
        return math.prod(x) * (layer.out_channels // layer.groups) * math.prod(layer.kernel)
    if layer.op in (Op.LINEAR, Op.MATMUL):
        return math.prod(out) * layer.in_channels
    return 0


def _other(layer: Layer) -> tuple[int, str]:
    out = layer.output_shape
    if out is None:
        return 0, ""
    n = math.prod(out)
    if layer.op in (Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR, Op.MATMUL):
        has_bias = len(layer.param_shapes) > 1
        return (n, "bias") if has_bias else (0, "")
    if layer.op in (Op.MAX_POOL, Op.AVG_POOL):
        return n * math.prod(layer.kernel), "pooling"
    if layer.op is Op.GLOBAL_POOL:
        x = layer.input_shapes[0] if layer.input_shapes else None
        return (math.prod(x) if x else 0), "pooling"
    category = _CATEGORY.get(layer.op)
    return (n, category) if category else (0, "")


def costs(graph: Graph) -> dict[str, Cost]:
    """Cost of every layer, keyed by layer name.

    Examples
    --------
    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph()
    >>> g.add_node("fc", layer=Layer("fc", Op.LINEAR, "Gemm", (1, 1000), ((1, 2048),),
    ...            in_channels=2048, out_channels=1000, param_shapes=((1000, 2048), (1000,))))
    >>> costs(g)["fc"]
    Cost(macs=2048000, params=2049000, other_ops=1000, category='bias')
    """
    result = {}
    for layer in graph.layers():
        params = sum(math.prod(shape) for shape in layer.param_shapes)
        ops, category = _other(layer)
        result[layer.name] = Cost(layer_macs(layer), params, ops, category)
    return result
