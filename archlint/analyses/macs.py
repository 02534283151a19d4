"""Multiply-accumulates (MACs), parameters and other operation counts per layer.

Headline MACs count the multiply-accumulates of convolutions and matrix products only:
the convention torchvision publishes ("GFLOPS" in its weight tables are these MACs) and
``torch.utils.flop_counter.FlopCounterMode`` agrees with (its FLOPs are 2 x MACs). All
other arithmetic is counted separately as ``other_ops``, one operation per output
element (per window element for pooling), with a ``category`` naming what it is.
Parameters are counted per use on each layer: a weight shared by two layers counts on both.
The model's total (:func:`total_params`) counts each parameter tensor once where the
frontend knows which layers share one (the PyTorch path records it in the graph attribute
``shared_params``); the ONNX path counts per use (the legacy exporter merges identical
tensors, which are not shared weights).

Recurrent layers follow the standard convention: per time step and direction,
``gates x hidden x (input + hidden)`` MACs (the input and the recurrent matrix products;
4 gates for LSTM, 3 for GRU, 1 for a simple RNN), times batch. Their bias adds and gate
nonlinearities are not counted as other operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..graph import POOL_OPS, Graph, Layer, Op

__all__ = ["Cost", "costs", "total_params", "layer_macs", "OTHER_CATEGORIES", "Convention", "HEADLINE", "convention_total",
           "ActivationPeak", "peak_activation"]

#: Labels of the non-headline operation counts, in report order.
OTHER_CATEGORIES = ("bias", "pooling", "activation", "elementwise", "normalization", "resize")
#: Layers with multiply-accumulates (the others count 0), and those of them whose other ops are bias adds.
_MAC_OPS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR, Op.MATMUL, Op.RECURRENT})
_BIASED_OPS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR, Op.MATMUL})
#: The ops ``layer_macs`` tells apart, read once: ``Op.X`` goes through the enum's hook on every read.
_CONV, _CONV_TRANSPOSE, _RECURRENT = Op.CONV, Op.CONV_TRANSPOSE, Op.RECURRENT
_DENSE_OPS = frozenset({Op.LINEAR, Op.MATMUL})
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

    A bidirectional LSTM (input 64, hidden 128) over 25 steps of a batch of 2:

    >>> lstm = Layer("rnn", Op.RECURRENT, "LSTM", (25, 2, 2, 128), ((25, 2, 64),),
    ...              in_channels=64, out_channels=128, gates=4, directions=2)
    >>> layer_macs(lstm) == 25 * 2 * 2 * 4 * 128 * (64 + 128)
    True
    """
    op = layer.op
    if op not in _MAC_OPS:
        return 0
    out = layer.output_shape
    if op is _CONV:
        return math.prod(out) * (layer.in_channels // layer.groups) * math.prod(layer.kernel)
    if op is _CONV_TRANSPOSE:
        x = layer.input_shapes[0]
        return math.prod(x) * (layer.out_channels // layer.groups) * math.prod(layer.kernel)
    if op in _DENSE_OPS:
        return math.prod(out) * layer.in_channels
    if op is _RECURRENT:  # the sequence is (steps, batch, features), or (steps, features) unbatched
        steps_times_batch = math.prod(layer.input_shapes[0][:-1])
        hidden = layer.out_channels
        return steps_times_batch * layer.directions * layer.gates * hidden * (layer.in_channels + hidden)
    return 0


def _other(layer: Layer) -> tuple[int, str]:
    out = layer.output_shape
    if out is None:
        return 0, ""
    n = math.prod(out)
    op = layer.op
    if op in _BIASED_OPS:
        has_bias = len(layer.param_shapes) > 1
        return (n, "bias") if has_bias else (0, "")
    if op in POOL_OPS:
        return n * math.prod(layer.kernel), "pooling"
    category = _CATEGORY.get(op)
    if category == "activation":
        return n, category  # the common case, settled at once
    x = layer.input_shapes[0] if layer.input_shapes else None
    if op is Op.GLOBAL_POOL:
        return (math.prod(x) if x else 0), "pooling"
    if op is Op.NORM and x and math.prod(x) > n:  # statistics reduced over channels or tokens
        return math.prod(x), "normalization"
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
    shared: dict[tuple[int, int, int, str], Cost] = {}  # equal costs (repeated blocks) share one Cost
    for layer in graph.layers():
        params = sum(map(math.prod, layer.param_shapes)) if layer.param_shapes else 0
        ops, category = _other(layer)
        key = (layer_macs(layer), params, ops, category)
        cost = shared.get(key)
        if cost is None:
            cost = shared[key] = Cost(*key)
        result[layer.name] = cost
    return result


def total_params(graph: Graph, costs_by_layer: dict[str, Cost]) -> int:
    """Parameters of the model: the per-layer counts, less the uses of shared parameters
    beyond their first (graph attribute ``shared_params``, set by the PyTorch frontend).

    Examples
    --------
    >>> from archlint.graph import Graph
    >>> g = Graph(shared_params=432)  # a 3->16 3x3 conv without bias, called twice
    >>> total_params(g, {"conv": Cost(0, 432), "conv_1": Cost(0, 432)})
    432
    """
    return sum(c.params for c in costs_by_layer.values()) - int(graph.graph.get("shared_params", 0))


# --- counting conventions ------------------------------------------------------------------

#: Names accepted for the categories of ``Convention.include`` (left) -> ``OTHER_CATEGORIES``.
_CATEGORY_ALIASES = {"bias": "bias", "pooling": "pooling", "pool": "pooling", "activation": "activation",
                     "activations": "activation", "elementwise": "elementwise", "normalization": "normalization",
                     "norm": "normalization", "batchnorm": "normalization", "bn": "normalization",
                     "resize": "resize"}


@dataclass(frozen=True)
class Convention:
    """How a total operation count is formed from the per-layer costs.

    ``unit`` is ``"macs"`` (one per multiply-accumulate) or ``"flops"`` (two per
    multiply-accumulate). ``include`` names the categories of ``other_ops`` added to the
    total, one operation each (in both units): ``bias``, ``pooling``, ``activation``,
    ``elementwise``, ``normalization`` (unfused norms only: both exporters and the PyTorch
    frontend fold a BatchNorm that follows a conv), ``resize``. The default is the headline
    convention: conv and matrix-product MACs only.

    Examples
    --------
    >>> Convention.parse("flops", "bias,norm").describe()
    'FLOPs = 2 x multiply-accumulates of convolutions and matrix products, + bias adds, normalization (1 op per element)'
    >>> Convention.parse("macs", "").describe()
    'multiply-accumulates of convolutions and matrix products'
    """

    unit: str = "macs"
    include: frozenset = frozenset()

    @classmethod
    def parse(cls, unit: str = "macs", include: "str | tuple[str, ...] | list[str]" = ()) -> "Convention":
        """A convention from user text; raises ``ValueError`` naming a bad unit or category."""
        unit = str(unit).strip().lower()
        if unit not in ("macs", "flops"):
            raise ValueError(f"count unit must be macs or flops, got {unit!r}")
        items = include.split(",") if isinstance(include, str) else list(include)
        chosen = set()
        for item in (i.strip().lower() for i in items):
            if not item or item == "none":
                continue
            if item == "all":
                chosen.update(OTHER_CATEGORIES)
            elif item in _CATEGORY_ALIASES:
                chosen.add(_CATEGORY_ALIASES[item])
            else:
                raise ValueError(f"unknown count category {item!r} (known: {', '.join(OTHER_CATEGORIES)}, all)")
        return cls(unit, frozenset(chosen))

    @property
    def is_headline(self) -> bool:
        return self.unit == "macs" and not self.include

    def describe(self) -> str:
        """One sentence naming what the total counts."""
        base = "multiply-accumulates of convolutions and matrix products"
        text = f"FLOPs = 2 x {base}" if self.unit == "flops" else base
        names = {"bias": "bias adds", "pooling": "pooling (per window element)", "activation": "activations",
                 "elementwise": "elementwise ops", "normalization": "normalization", "resize": "resize"}
        extra = [names[c] for c in OTHER_CATEGORIES if c in self.include]
        return text + (f", + {', '.join(extra)} (1 op per element)" if extra else "")

    def to_dict(self) -> dict:
        return {"unit": self.unit, "include": [c for c in OTHER_CATEGORIES if c in self.include],
                "convention": self.describe()}


#: The headline convention: conv and matrix-product MACs, nothing else.
HEADLINE = Convention()


def convention_total(rows, convention: Convention = HEADLINE) -> int:
    """Total count of ``rows`` (objects with ``macs``, ``other_ops``, ``other_category``) under ``convention``.

    Examples
    --------
    >>> from types import SimpleNamespace as Row
    >>> rows = [Row(macs=100, other_ops=10, other_category="bias"), Row(macs=0, other_ops=5, other_category="activation")]
    >>> convention_total(rows), convention_total(rows, Convention.parse("flops", "bias"))
    (100, 210)
    """
    factor = 2 if convention.unit == "flops" else 1
    total = 0
    for row in rows:
        total += factor * row.macs
        if row.other_ops and row.other_category in convention.include:
            total += row.other_ops
    return total


# --- activation memory ---------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationPeak:
    """Peak activation size (elements, batch included) and where it happens.

    ``elements`` is the largest sum of live activation tensors, walking the layers in the
    graph's topological order: while a layer computes its output, that output, every
    earlier output still read by a later layer (graph inputs included) and every graph
    output produced so far are live. ``layer`` is the layer at the peak; ``largest`` and
    ``largest_layer`` give the largest single activation tensor. Views (reshape, flatten)
    count as tensors of their own; layers with unknown shapes count 0.
    """

    elements: int
    layer: str
    largest: int
    largest_layer: str


def peak_activation(graph: Graph) -> ActivationPeak:
    """The :class:`ActivationPeak` of ``graph``.

    Examples
    --------
    A 1x3x8x8 input, a conv to 1x4x8x8, and an add of the two convs' outputs:

    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 3, 8, 8)))
    >>> g.add_node("a", layer=Layer("a", Op.CONV, "Conv", (1, 4, 8, 8)))
    >>> g.add_node("b", layer=Layer("b", Op.CONV, "Conv", (1, 4, 8, 8)))
    >>> g.add_node("s", layer=Layer("s", Op.ADD, "Add", (1, 4, 8, 8)))
    >>> g.add_edges_from([("x", "a"), ("x", "b"), ("a", "s"), ("b", "s", {"index": 1})])
    >>> g.graph["outputs"] = ["s"]
    >>> peak_activation(g)  # computing s: a, b and s (256 each) are live; x (192) died after b
    ActivationPeak(elements=768, layer='s', largest=256, largest_layer='a')
    """
    order = graph.order()
    position = {name: i for i, name in enumerate(order)}
    outputs = set(graph.graph.get("outputs", ()))
    last_use = {}
    for name in order:
        readers = [position[s] for s in graph.successors(name)]
        last_use[name] = len(order) if name in outputs else max(readers, default=position[name])
    sizes = {}
    for name in order:
        shape = graph.layer(name).output_shape
        sizes[name] = math.prod(shape) if shape and all(isinstance(d, int) and d >= 0 for d in shape) else 0
    dies_after: dict[int, list[str]] = {}  # step -> tensors whose last reader runs at that step
    for name in order:
        dies_after.setdefault(last_use[name], []).append(name)
    total, peak, peak_layer = 0, 0, order[0] if order else ""
    for i, name in enumerate(order):
        total += sizes[name]
        if total > peak:
            peak, peak_layer = total, name
        for done in dies_after.get(i, ()):
            total -= sizes[done]
    largest_layer = max(order, key=lambda n: sizes[n], default="")
    return ActivationPeak(peak, peak_layer, sizes.get(largest_layer, 0), largest_layer)
