"""Receptive field of every layer, per spatial axis, on graphs with any number of paths.

Conventions follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks" (Distill, 2019). Along one axis, output position ``x`` of a layer sees
input pixels ``[x*stride - padding, x*stride - padding + size - 1]`` (padding counted as
pixels): ``size`` is the receptive field, ``stride`` the effective stride (jump) and
``padding`` the effective padding. A layer with kernel ``k``, stride ``s``, begin
padding ``p`` and dilation ``d`` maps ``(r, j, P)`` to
``(r + (d*(k-1)) * j, j * s, P + p * j)``.

Where paths meet (add, concat, mul) the field is the union of the aligned regions of
the inputs. Branches with equal strides merge exactly; branches with different strides
(possible only after resizing) are kept apart as separate pieces, so the union stays
exact; past ``MAX_PIECES`` pieces on an axis (merges of branches resized by many different
factors can double the pieces at each merge) the field is reported unknown. Inputs without
spatial extent (squeeze-excitation scales, globally pooled context) are not aligned with
any pixel: they mark the result ``global_context`` without changing its field. Global
pooling, flatten and dense layers make the field ``global``: it then spans the whole
input. Upsampling divides the stride (fractions are kept exact); transposed convolutions
are treated as the continuous inverse of a convolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from fractions import Fraction

from ..graph import Graph, Layer, Op
from .shapes import spatial_dims

__all__ = ["AxisField", "ReceptiveField", "receptive_fields", "summary_receptive_field", "input_extent"]

_ELEMENTWISE = frozenset({Op.ADD, Op.MUL, Op.CONCAT, Op.ACTIVATION, Op.NORM})
_WINDOWED = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.MAX_POOL, Op.AVG_POOL})


@dataclass(frozen=True, order=True)
class AxisField:
    """One affine piece of a receptive field along one axis (sizes in input pixels).

    Values are exact: ``int`` while only integer strides are involved, ``Fraction`` after
    upsampling or transposed convolutions.
    """

    stride: int | Fraction
    size: int | Fraction
    padding: int | Fraction

    def start(self, x: int) -> Fraction:
        """First input pixel seen by output position ``x`` (negative: padding)."""
        return x * self.stride - self.padding

    def end(self, x: int) -> Fraction:
        """Last input pixel seen by output position ``x``."""
        return self.start(x) + self.size - 1


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one layer's output.

    ``axes`` holds, per spatial axis, the pieces of the field (one piece unless branches
    with different strides meet), ``extent`` the output length along that axis and
    ``positions`` the tensor axes that hold the spatial axes (``(2, 3)`` in NCHW,
    ``(1, 2)`` after a permute to NHWC).
    ``is_global``: every output value depends on the whole input (after global pooling or
    flatten); ``size`` then spans all input pixels and the padding around them.
    ``global_context``: a path with global information (e.g. squeeze-excitation) joined in.
    """

    axes: tuple[tuple[AxisField, ...], ...]
    extent: tuple[int, ...]
    positions: tuple[int, ...] = ()
    is_global: bool = False
    global_context: bool = False
    #: Largest span of input pixels seen by one output position, per axis.
    size: tuple[int | Fraction, ...] = dataclass_field(init=False, compare=False, repr=False)
    #: Effective stride per axis (of the coarsest piece where pieces differ).
    stride: tuple[int | Fraction, ...] = dataclass_field(init=False, compare=False, repr=False)
    #: Effective padding per axis: how far output 0's field starts before pixel 0.
    padding: tuple[int | Fraction, ...] = dataclass_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # computed once here: every report row reads all three
        size, stride, padding = [], [], []
        for pieces, n in zip(self.axes, self.extent):
            if len(pieces) == 1:
                size.append(pieces[0].size)
                stride.append(pieces[0].stride)
                padding.append(pieces[0].padding)
            else:
                size.append(_span(pieces, n))
                stride.append(max(p.stride for p in pieces))
                padding.append(max(p.padding for p in pieces))
        object.__setattr__(self, "size", tuple(size))
        object.__setattr__(self, "stride", tuple(stride))
        object.__setattr__(self, "padding", tuple(padding))

    def moved(self, axes=None, extent=None, positions=None, context: bool | None = None) -> "ReceptiveField":
        """A copy with some parts replaced (fields are immutable)."""
        return ReceptiveField(self.axes if axes is None else tuple(axes),
                              self.extent if extent is None else tuple(extent),
                              self.positions if positions is None else tuple(positions),
                              self.is_global, self.global_context if context is None else context)


def _span(pieces: tuple[AxisField, ...], n: int) -> Fraction:
    if len(pieces) == 1:
        return pieces[0].size
    # The union's size is convex in x, so its maximum is at the first or last position.
    def at(x: int) -> Fraction:
        return max(p.end(x) for p in pieces) - min(p.start(x) for p in pieces) + 1
    return max(at(0), at(max(n - 1, 0)))


#: Most pieces one axis of a field may hold; real networks merge a handful of strides at most.
MAX_PIECES = 64


def _union(pieces: list[AxisField]) -> tuple[AxisField, ...] | None:
    """Pieces of the union, one per stride; ``None`` beyond ``MAX_PIECES`` strides."""
    by_stride: dict[Fraction, AxisField] = {}
    for p in pieces:
        q = by_stride.get(p.stride)
        if q is None:
            by_stride[p.stride] = p
        else:
            pad = max(p.padding, q.padding)
            end = max(p.size - p.padding, q.size - q.padding)
            by_stride[p.stride] = AxisField(p.stride, end + pad, pad)
    if len(by_stride) > MAX_PIECES:
        return None
    return tuple(sorted(by_stride.values()))


def _globalize(field: ReceptiveField) -> ReceptiveField:
    """Union over all output positions: the field of a value that reads the whole map."""
    axes = []
    for pieces, n in zip(field.axes, field.extent):
        start = min(p.start(0) for p in pieces)
        end = max(p.end(max(n - 1, 0)) for p in pieces)
        axes.append((AxisField(0, end - start + 1, -start),))
    return ReceptiveField(tuple(axes), (1,) * len(axes), (), True, field.global_context)


def _window(layer: Layer, field: ReceptiveField, extent: tuple[int, ...]) -> ReceptiveField:
    axes = []
    for axis, pieces in enumerate(field.axes):
        k, s = layer.kernel[axis], layer.stride[axis]
        d, p = layer.dilation[axis], layer.pads_begin[axis]
        reach = d * (k - 1)
        if layer.op is Op.CONV_TRANSPOSE:
            axes.append(tuple(AxisField(Fraction(q.stride) / s, q.size + Fraction(reach, s) * q.stride,
                                        q.padding + Fraction(reach - p, s) * q.stride) for q in pieces))
        else:
            axes.append(tuple([AxisField(q.stride * s, q.size + reach * q.stride, q.padding + p * q.stride)
                               for q in pieces]))
    return ReceptiveField(tuple(axes), extent, field.positions, field.is_global, field.global_context)


def _resize(layer: Layer, field: ReceptiveField, extent: tuple[int, ...]) -> ReceptiveField:
    """Interpolation: output y reads source positions rounded from ``pos = y*step + offset``.

    The read index lies in ``[pos + lo, pos + hi]`` for every y, where ``lo``/``hi`` come
    from the rounding (floor loses up to 1 - 1/D when positions are multiples of 1/D) and
    the taps (linear reads floor(pos) and floor(pos)+1, cubic floor(pos)-1 .. floor(pos)+2).
    The field is the affine hull of those reads: an outer bound that holds at every phase.
    """
    axes = []
    for axis, pieces in enumerate(field.axes):
        n_in, n_out = field.extent[axis], extent[axis]
        if layer.coordinate_mode == "align_corners" and n_out > 1:
            step, offset = Fraction(n_in - 1, n_out - 1), Fraction(0)
        else:
            step = Fraction(n_in, n_out)
            offset = (step - 1) / 2 if layer.coordinate_mode in ("half_pixel", "pytorch_half_pixel") else Fraction(0)
        grid = math.lcm(step.denominator, offset.denominator)
        floor_loss = 1 - Fraction(1, grid)
        if layer.mode == "nearest":
            lo, hi = {"floor": (-floor_loss, Fraction(0)), "ceil": (Fraction(0), floor_loss)}.get(
                layer.rounding, (Fraction(-1, 2), Fraction(1, 2)))
        else:
            first, last = (-1, 2) if layer.mode == "cubic" else (0, 1)
            lo, hi = first - floor_loss, Fraction(last)
        lo, hi = offset + lo, offset + hi
        axes.append(tuple(AxisField(q.stride * step, q.size + (hi - lo) * q.stride,
                                    q.padding - lo * q.stride) for q in pieces))
    return field.moved(axes, extent)


def _shift(layer: Layer, field: ReceptiveField, extent: tuple[int, ...]) -> ReceptiveField:
    """Pad (``pads_begin`` more pixels before) or slice (start ``starts``, step ``stride``)."""
    axes = []
    for axis, pieces in enumerate(field.axes):
        if layer.op is Op.PAD:
            pad = layer.pads_begin[axis] if layer.pads_begin else 0
            axes.append(tuple(AxisField(q.stride, q.size, q.padding + pad * q.stride) for q in pieces))
        else:
            first = layer.starts[axis] if layer.starts else 0
            step = layer.stride[axis] if layer.stride else 1
            axes.append(tuple(AxisField(q.stride * step, q.size, q.padding - first * q.stride) for q in pieces))
    return field.moved(axes, extent)


def receptive_fields(graph: Graph) -> dict[str, ReceptiveField | None]:
    """Receptive field of every layer's output; ``None`` where it is unknown or not spatial.

    A field is unknown downstream of ops archlint does not understand (``Op.OTHER``)
    and of reshapes that scramble spatial axes.

    Examples
    --------
    Two stacked 3x3 convs (padding 1) see 5x5 pixels:

    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 3, 8, 8)))
    >>> conv = dict(kernel=(3, 3), stride=(1, 1), pads_begin=(1, 1), pads_end=(1, 1), dilation=(1, 1))
    >>> for prev, name in (("x", "a"), ("a", "b")):
    ...     g.add_node(name, layer=Layer(name, Op.CONV, "Conv", (1, 3, 8, 8), ((1, 3, 8, 8),), **conv))
    ...     g.add_edge(prev, name, index=0)
    >>> rf = receptive_fields(g)["b"]
    >>> [int(v) for v in rf.size], [int(v) for v in rf.stride], [int(v) for v in rf.padding]
    ([5, 5], [1, 1], [2, 2])
    """
    fields: dict[str, ReceptiveField | None] = {}
    for layer in graph.layers():
        inputs = [fields.get(p) for p in graph.inputs_of(layer.name)]
        fields[layer.name] = _field(layer, inputs)
    return fields


def _standard(shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Positions of the spatial axes of an NCHW-style tensor: ``(2, 3)`` for rank 4."""
    return tuple(range(2, len(shape))) if shape and len(shape) >= 3 else ()


def _extent_at(shape: tuple[int, ...] | None, positions: tuple[int, ...]) -> tuple[int, ...] | None:
    if shape is None or max(positions, default=-1) >= len(shape):
        return None
    return tuple([shape[p] for p in positions])


def _field(layer: Layer, inputs: list[ReceptiveField | None]) -> ReceptiveField | None:
    op, out = layer.op, layer.output_shape
    if op is Op.INPUT:
        positions = _standard(out)
        one = AxisField(1, 1, 0)  # ints stay ints until a resize or transposed conv
        return ReceptiveField(tuple((one,) for _ in positions), _extent_at(out, positions), positions) \
            if positions else None
    if len(inputs) == 1:  # the common case, without the general bookkeeping
        field = inputs[0]
        if field is None or field.is_global:
            return field
        aligned, context = inputs, field.global_context
    else:
        if not inputs or None in inputs:
            return None
        aligned = [f for f in inputs if not f.is_global]
        context = any(f.global_context or f.is_global for f in inputs)
        if not aligned:  # everything upstream is already global
            return inputs[0]
        field = aligned[0]
    if op in (Op.GLOBAL_POOL, Op.FLATTEN):
        return _globalize(field)
    if op in (Op.LINEAR, Op.MATMUL):
        # a dense layer mixes its last axis; over channels (NHWC) it is pointwise
        if len(aligned) > 1 or out is None or (len(out) - 1) in field.positions:
            return _globalize(field)
        return field.moved(extent=_extent_at(out, field.positions), context=context)
    if op in _ELEMENTWISE:
        if len(aligned) > 1 and any(f.positions != field.positions or f.extent != field.extent for f in aligned):
            return None  # spatially misaligned operands: no single field per position
        same_shape = field is inputs[0] and layer.input_shapes and out == layer.input_shapes[0]
        if not same_shape and _extent_at(out, field.positions) != field.extent:
            return None
        if len(aligned) == 1:
            return field if context == field.global_context else field.moved(context=context)
        axes = [_union([p for f in aligned for p in f.axes[a]]) for a in range(len(field.extent))]
        if None in axes:
            return None  # too many pieces to follow
        return field.moved(axes, context=context)
    if len(inputs) != 1:
        return None
    if op is Op.RESHAPE:
        return _reshaped(layer, field)
    if field.positions != _standard(layer.input_shapes[0] if layer.input_shapes else None):
        return None  # windowed ops work on NCHW; a field on other axes cannot follow
    extent = _extent_at(out, field.positions)
    if extent is None:
        return None
    if op in _WINDOWED:
        return _window(layer, field, extent)
    if op is Op.RESIZE:
        return _resize(layer, field, extent)
    if op in (Op.PAD, Op.SLICE):
        if op is Op.SLICE and not layer.starts and extent != field.extent:
            return None  # a split along a spatial axis: offset per output unknown
        return _shift(layer, field, extent)
    return None


def _reshaped(layer: Layer, field: ReceptiveField) -> ReceptiveField | None:
    """Follow spatial axes through transpose/reshape; ``None`` if they are scrambled."""
    out, x = layer.output_shape, layer.input_shapes[0] if layer.input_shapes else None
    if out is None or x is None:
        return None
    if layer.perm:
        positions = tuple(layer.perm.index(p) for p in field.positions)
        return field.moved(extent=_extent_at(out, positions), positions=positions)
    if len(out) <= 2:
        return _globalize(field)
    # reshapes that leave the spatial axes in place counted from the end (channel shuffle,
    # squeeze/unsqueeze of leading axes) keep the field
    from_end = tuple(p - len(x) for p in field.positions)
    positions = tuple(len(out) + p for p in from_end)
    if all(p >= 0 for p in positions) and _extent_at(out, positions) == field.extent:
        return field.moved(positions=positions)
    return None


def input_extent(graph: Graph, layer: str) -> tuple[int, ...]:
    """Spatial size of the first graph input that ``layer`` depends on (``()`` if none is known).

    The input the receptive field of ``layer`` is measured against.
    """
    import networkx as nx

    candidates = graph.graph.get("inputs") or [n for n in graph if graph.layer(n).op is Op.INPUT]
    for name in candidates:
        if name in graph and (name == layer or nx.has_path(graph, name, layer)):
            return spatial_dims(graph.layer(name).output_shape)
    return ()


def summary_receptive_field(graph: Graph, fields: dict[str, ReceptiveField | None]) -> str | None:
    """Name of the last layer whose output still has spatial extent and a known, aligned field."""
    for layer in reversed(list(graph.layers())):
        field = fields.get(layer.name)
        if field is not None and not field.is_global and field.extent and layer.op is not Op.INPUT:
            return layer.name
    return None
