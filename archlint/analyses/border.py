"""Border loss of windowed layers without size-keeping padding, per layer and accumulated.

A convolution or pooling window of kernel ``k``, dilation ``d`` and stride ``s`` keeps
the size of its map, ``ceil(n / s)`` outputs for ``n`` inputs, when it is padded by
``d*(k-1)`` pixels in total: ``d*(k-1)/2`` on each side for odd ``k``; for even ``k``
the odd total cannot be split evenly and goes ``floor`` before, ``ceil`` after (as
TensorFlow's ``SAME`` and PyTorch's ``padding="same"`` do). With less padding the map
shrinks. Each missing output position along an axis is ``s`` pixels of the layer's
input and ``s * J`` pixels of the model's input, where ``J`` is the effective stride
(jump) of the layer's input (:mod:`archlint.analyses.receptive_field`). That is the
layer's *border loss*. Explicit ``Pad`` layers feeding a window count as its padding: the
canonical pass (:mod:`archlint.canonical`) folds them into the window, whatever their mode.

Only windows that overlap along an axis (``d*(k-1) + 1 > s``) are considered there:
non-overlapping windows (a 2x2 stride-2 pool, a patchify conv) tile the map, and their
only loss is the remainder of ``n / s``, a question of input size rather than padding.
Nor is a single unpadded window as large as the axis (a 7x7 conv on a 7x7 map, VGG's
fully-connected layer written as a conv; a 7x7 average pool there): it reads every
position, a dense layer or global pooling rather than a shrinking window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from fractions import Fraction

from ..graph import READING_OPS, Graph, Layer, Op
from .receptive_field import ReceptiveField
from .shapes import one_window_over_axis, spatial_dims

__all__ = ["BorderLoss", "BorderLossTotal", "same_padding", "border_loss", "border_losses",
           "cumulative_border_losses", "border_loss_ends"]

def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """Padding (before, after) that keeps ``ceil(n / stride)`` outputs along one axis.

    The total ``d*(k-1)`` is split evenly for odd ``k``; for even ``k`` the extra pixel
    goes after, as TensorFlow ``SAME`` and PyTorch ``padding="same"`` place it.

    Examples
    --------
    >>> same_padding(3), same_padding(3, dilation=2), same_padding(2), same_padding(4)
    ((1, 1), (2, 2), (0, 1), (1, 2))
    """
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class BorderLoss:
    """How much one windowed layer shrinks its map beyond ``ceil(n / stride)``, per spatial axis.

    ``padding`` is the padding the layer gets (including ``Pad`` layers folded into it),
    ``padding_needed`` the size-keeping padding, ``input_size`` the size before any padding,
    ``kept_size`` the size the layer would produce with that padding,
    ``lost`` the shortfall in the layer's input pixels (missing outputs times stride),
    ``input_stride`` the effective stride of its input and ``pixels`` the loss in model-input
    pixels (``lost * input_stride``; ``None`` where that stride is unknown).
    """

    layer: str
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    kept_size: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_needed: tuple[tuple[int, int], ...]
    lost: tuple[int, ...]
    input_stride: tuple[Fraction, ...] | None
    pixels: tuple[Fraction, ...] | None


@dataclass(frozen=True)
class BorderLossTotal:
    """Border loss accumulated from the model input to one layer, along its lossiest path.

    ``pixels`` per axis in model-input pixels, ``input_size`` the model input's spatial
    size, ``last`` the last shrinking layer on that path (``None`` if none shrinks) and
    ``previous`` the total just before it; ``layers`` lists the shrinking layers in order.
    """

    pixels: tuple[Fraction, ...]
    input_size: tuple[int, ...]
    last: str | None = None
    previous: BorderLossTotal | None = dataclass_field(default=None, repr=False, compare=False)
    #: Loss as a fraction of the input size, per axis.
    fractions: tuple[Fraction, ...] = dataclass_field(init=False, repr=False, compare=False)
    #: Largest per-axis fraction (0 without spatial axes).
    fraction: Fraction = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fractions = tuple(Fraction(p) / n for p, n in zip(self.pixels, self.input_size))
        object.__setattr__(self, "fractions", fractions)
        object.__setattr__(self, "fraction", max(fractions, default=Fraction(0)))

    @property
    def layers(self) -> tuple[str, ...]:
        """The shrinking layers on the path, in order (a walk back along it)."""
        names = []
        total: BorderLossTotal | None = self
        while total is not None and total.last is not None:
            names.append(total.last)
            total = total.previous
        return tuple(reversed(names))


def _keeps_size(layer: Layer) -> bool:
    """Whether the layer's own padding is enough on every axis (or its windows do not overlap)."""
    rank = len(layer.kernel)
    strides, dilations = layer.stride or (1,) * rank, layer.dilation or (1,) * rank
    begin, end = layer.pads_begin or (0,) * rank, layer.pads_end or (0,) * rank
    if not len(strides) == len(dilations) == len(begin) == len(end) == rank:
        return False  # malformed: let the full check decide
    for k, s, d, b, e in zip(layer.kernel, strides, dilations, begin, end):
        reach = d * (k - 1)
        if b + e < reach and reach + 1 > s:
            return False
    return True


def border_loss(graph: Graph, layer: Layer,
                fields: Mapping[str, ReceptiveField | None] | None = None) -> BorderLoss | None:
    """The :class:`BorderLoss` of a conv or pooling layer, or ``None`` if it keeps its size.

    ``fields`` (from :func:`~archlint.analyses.receptive_field.receptive_fields`) maps the
    loss to model-input pixels; without it ``pixels`` is ``None``.

    Examples
    --------
    An unpadded 3x3 conv on 32x32 loses 2 pixels per axis; pad 1 per side keeps the size:

    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 3, 32, 32)))
    >>> g.add_node("c", layer=Layer("c", Op.CONV, "Conv", (1, 8, 30, 30), ((1, 3, 32, 32),),
    ...     kernel=(3, 3), stride=(1, 1), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1)))
    >>> g.add_edge("x", "c", index=0)
    >>> loss = border_loss(g, g.layer("c"))
    >>> loss.kept_size, loss.output_size, loss.lost, loss.padding_needed
    ((32, 32), (30, 30), (2, 2), ((1, 1), (1, 1)))
    """
    if layer.op not in READING_OPS or not layer.kernel:
        return None
    producers = graph.inputs_of(layer.name)
    if not producers or _keeps_size(layer):
        return None
    out = spatial_dims(layer.output_shape)
    source = producers[0]
    size = spatial_dims(graph.layer(source).output_shape)
    if len(out) != len(layer.kernel) or len(size) != len(out):
        return None
    rank = len(out)
    strides, dilations = layer.stride or (1,) * rank, layer.dilation or (1,) * rank
    begin, end = layer.pads_begin or (0,) * rank, layer.pads_end or (0,) * rank
    kept, lost, needed = [], [], []
    for axis, (n, m) in enumerate(zip(size, out)):
        k, s, d = layer.kernel[axis], strides[axis], dilations[axis]
        needed.append(same_padding(k, d))
        keep = -(-n // s)
        kept.append(keep)
        overlapping = d * (k - 1) + 1 > s
        padding = begin[axis] + end[axis]
        under_padded = padding < d * (k - 1)
        dense = one_window_over_axis(n, m, k, d, begin[axis])  # the whole axis read at once: not shrinking
        lost.append((keep - m) * s if overlapping and under_padded and not dense and m < keep else 0)
    if not any(lost):
        return None
    field = fields.get(source) if fields is not None else None
    stride = field.stride if field is not None and not field.is_global and len(field.axes) == len(out) else None
    pixels = tuple(Fraction(v) * j for v, j in zip(lost, stride)) if stride is not None else None
    padding = tuple(zip(begin, end))
    return BorderLoss(layer.name, tuple(size), tuple(out), tuple(kept), padding, tuple(needed),
                      tuple(lost), stride, pixels)


def border_losses(graph: Graph, fields: Mapping[str, ReceptiveField | None] | None = None
                  ) -> dict[str, BorderLoss]:
    """:class:`BorderLoss` of every shrinking conv and pooling layer, in topological order."""
    result = {}
    for layer in graph.layers():
        loss = border_loss(graph, layer, fields)
        if loss is not None:
            result[layer.name] = loss
    return result


def cumulative_border_losses(graph: Graph, fields: Mapping[str, ReceptiveField | None],
                             own: Mapping[str, BorderLoss] | None = None) -> dict[str, BorderLossTotal | None]:
    """Border loss accumulated up to every layer; ``None`` where the map is not spatial or unknown.

    Where paths meet, the lossiest one (largest fraction, then most pixels) is followed.
    ``own`` is :func:`border_losses` of the graph, computed here if not given.

    Examples
    --------
    Five unpadded 3x3 convs on 32x32 lose 2 pixels each, 10 of 32 in all:

    >>> from archlint.graph import Graph, Layer, Op
    >>> from archlint.analyses.receptive_field import receptive_fields
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 1, 32, 32)))
    >>> prev = "x"
    >>> for i in range(5):
    ...     n = 32 - 2 * i
    ...     g.add_node(f"c{i}", layer=Layer(f"c{i}", Op.CONV, "Conv", (1, 1, n - 2, n - 2), ((1, 1, n, n),),
    ...         kernel=(3, 3), stride=(1, 1), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1)))
    ...     g.add_edge(prev, f"c{i}", index=0)
    ...     prev = f"c{i}"
    >>> total = cumulative_border_losses(g, receptive_fields(g))["c4"]
    >>> [int(p) for p in total.pixels], total.input_size, float(total.fraction), len(total.layers)
    ([10, 10], (32, 32), 0.3125, 5)
    """
    if own is None:
        own = border_losses(graph, fields)
    result: dict[str, BorderLossTotal | None] = {}
    input_op = Op.INPUT
    for layer in graph.layers():
        name = layer.name
        field = fields.get(name)
        if field is None or field.is_global or not field.extent:
            result[name] = None
            continue
        rank = len(field.extent)
        if layer.op is input_op:
            result[name] = BorderLossTotal((Fraction(0),) * rank, tuple(field.extent))
            continue
        producers = graph.inputs_of(name)
        if len(producers) == 1:
            best = result.get(producers[0])
            if best is not None and len(best.pixels) != rank:
                best = None
        else:
            # each total compared once: a merge often gets the same one from many inputs (DenseNet's concats),
            # and its key sums Fractions; the first of equally lossy totals still wins
            upstream = {id(u): u for u in map(result.get, producers) if u is not None and len(u.pixels) == rank}
            best = max(upstream.values(), key=lambda u: (u.fraction, sum(u.pixels))) if upstream else None
        if best is not None:
            loss = own.get(name)
            if loss is not None and loss.pixels is not None and len(loss.pixels) == rank:
                best = BorderLossTotal(tuple(a + b for a, b in zip(best.pixels, loss.pixels)),
                                       best.input_size, name, best)
        result[name] = best
    return result


def border_loss_ends(graph: Graph, cumulative: Mapping[str, BorderLossTotal | None]) -> list[str]:
    """The last shrinking layer of the path followed to each final spatial map, in topological order.

    A final map is one whose consumers (if any) have no accumulated loss, e.g. a graph output
    or the input of global pooling or flatten. Where branches merge, the lossiest one is the
    path followed, so parallel branches that shrink equally and then merge give one end;
    branches that never merge (separate heads) give one end each.
    """
    ends: set[str] = set()
    for layer in graph.layers():
        here = cumulative.get(layer.name)
        if here is None or here.last is None:
            continue
        if all(cumulative.get(s) is None for s in graph.successors(layer.name)):
            ends.add(here.last)
    return [layer.name for layer in graph.layers() if layer.name in ends]
