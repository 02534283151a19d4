"""Receptive field of every layer, per spatial axis, on graphs with any number of paths.

Conventions follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks" (Distill, 2019). Along one axis, output position ``x`` of a layer sees
input pixels ``[x*stride - padding, x*stride - padding + size - 1]`` (padding counted as
pixels): ``size`` is the receptive field, ``stride`` the effective stride (jump) and
``padding`` the effective padding. A layer with kernel ``k``, stride ``s``, begin
padding ``p`` and dilation ``d`` maps ``(r, j, P)`` to
``(r + (d*(k-1)) * j, j * s, P + p * j)``.

Where paths meet (add, concat, mul) the field is the union of the aligned regions of
the inputs; a stack (a concat along a new axis off the positions) lays them side by side, each
position keeping its place. Branches with equal strides merge exactly; branches with different strides
(possible only after resizing) are kept apart as separate pieces, so the union stays
exact; past ``MAX_PIECES`` pieces on an axis (merges of branches resized by many different
factors can double the pieces at each merge) the field is reported unknown. Inputs without
spatial extent (squeeze-excitation scales, globally pooled context) are not aligned with
any pixel: they mark the result ``global_context`` without changing its field; a map whose
every position already sees the whole input (an attention output) makes the result global. Global
pooling, flatten and dense layers make the field ``global``: it then spans the whole
input. A conv window that reads its whole input map at once (no padding) is such a dense
layer (VGG's fully-connected layer written as a 7x7 conv); a pooling window whose one output
reads the whole map is global pooling, with or without end padding (Caffe's ceil-mode pools
converted to ONNX pad the end). Upsampling divides the stride (fractions are kept exact); transposed convolutions
are treated as the continuous inverse of a convolution.

Upsampling and the single-triple convention
    After an integer upsampling by ``D`` the true field of an output pixel is a staircase:
    its first input pixel moves by the input stride ``j`` once every ``D`` outputs, while
    one ``(size, stride, padding)`` triple moves by ``j / D`` at every output. The smallest
    triple that holds every phase is therefore wider than any single pixel's true field, by
    ``j * (1 - 1/G)`` where ``G`` is the phase grid (``D`` for nearest, ``2D`` for the
    half-pixel linear modes): less than one input stride. A stride-8 conv (field 8) then an
    8x upsample gives 15 for nearest where each pixel sees 8 (excess ``8 * 7/8``), and 23.5
    for bilinear where each sees 16 (excess ``8 * 15/16``). The report keeps the triple (it
    is an outer bound at every pixel, which is what the field rules need). Resizes with
    ``align_corners`` map ``n`` pixels onto ``m`` with the step ``(n-1)/(m-1)``: strides such
    as 66/65 are exact fractions and print as such.

Tokens and attention
    A reshape that merges the spatial axes into one axis (``x.flatten(2)`` in vision
    transformers) keeps each token's field; the field then follows that token axis through
    transposes, dense layers over channels and reshapes that leave it whole (a reshape keeps
    an axis when its length and the product of the axes before it are unchanged), and back
    to spatial axes when it is split into them again. A product of two activations that
    carry positions (attention scores ``Q @ K^T`` and attention-weighted sums ``A @ V``)
    mixes positions: every output then depends on every position, so the field is global
    (for the scores this is an outer bound: each score sees two tokens, and the softmax
    that follows reads the whole row). A global field keeps following its positions, so the
    last spatial map of a transformer is its last token map, with a global field.
    A dense layer over the token axis (MLP-Mixer's token-mixing MLP) makes the field global
    too, and its output axis is taken to hold the tokens still (the MLP maps tokens back to
    tokens). A mean, sum or max over the token axis (``x.mean(1)`` before a ViT's head) is
    global pooling; over channels it is a per-position statistic. A 1-d pool or conv along
    the token axis (Next-ViT's ``AvgPool1d`` before its keys and values) whose windows stay
    within rows (no padding, the stride divides the row, the window no longer than the
    stride) is a window along the rows; windows that straddle rows leave tokens that are no
    map, and the field is unknown there.
    A product of a map with an activation that holds no positions (a matrix computed from
    the input, such as bilinear attention's row and column mixing matrices ``P @ X @ Q``)
    is global when it sums over a position axis, keeping the map's positions if it keeps
    its shape (an outer bound while only one axis is mixed: ``P @ X`` mixes rows, then
    ``@ Q`` columns); summed over channels (cross-covariance attention) it is pointwise,
    with global context.

Unknown fields and input-independent values
    Ops archlint does not understand, reshapes that scramble the spatial axes (window
    partitions, patch unfolding) and misaligned merges make a field unknown (``None``), and
    so are all fields computed from it. Layers whose input does not depend on the model's
    input (a conv applied to a constant) have no field (``None``) and are left out of merges.
    :func:`summary_receptive_field` returns ``None`` when a model output's field is unknown:
    the field of its last spatial map is then unknown too, and
    :func:`lost_receptive_field` names the layer where it was lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from fractions import Fraction
from types import EllipsisType

from ..graph import CONV_OPS, INPUT_OPS, POOL_OPS, SPATIAL_OPS, Graph, Layer, Op
from .shapes import single_window_over_map, spatial_dims, whole_map_window

__all__ = ["AxisField", "ReceptiveField", "receptive_fields", "summary_receptive_field", "input_extent",
           "FieldLoss", "lost_receptive_field", "input_dependent", "grid_operand"]

_ELEMENTWISE = frozenset({Op.ADD, Op.MUL, Op.CONCAT, Op.ACTIVATION, Op.NORM})
#: Op classes tested in the per-layer pass as sets: a set test is a hash lookup, while reading
#: ``Op.X`` goes through the enum metaclass's ``__getattr__`` hook on Python 3.11.
_DENSE = frozenset({Op.LINEAR, Op.MATMUL})
_STACKS = frozenset({Op.CONCAT})
_TRANSPOSED = frozenset({Op.CONV_TRANSPOSE})


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
    ``(1, 2)`` after a permute to NHWC). ``token_axis`` is the one tensor axis that holds
    all spatial positions flattened row-major (tokens), with ``positions`` then empty; a
    token axis may be longer than the map (extra tokens computed from parameters, such as a
    class token, see no pixel).
    ``is_global``: every output value depends on the whole input (after global pooling,
    flatten or attention over all positions); ``size`` then spans all input pixels and the
    padding around them. A global field may still have positions (the token map after
    attention); after global pooling it has none.
    ``global_context``: a path with global information (e.g. squeeze-excitation) joined in.
    """

    axes: tuple[tuple[AxisField, ...], ...]
    extent: tuple[int, ...]
    positions: tuple[int, ...] = ()
    is_global: bool = False
    global_context: bool = False
    token_axis: int | None = None
    #: Largest span of input pixels seen by one output position, per axis.
    size: tuple[int | Fraction, ...] = dataclass_field(init=False, compare=False, repr=False)
    #: Effective stride per axis (of the coarsest piece where pieces differ).
    stride: tuple[int | Fraction, ...] = dataclass_field(init=False, compare=False, repr=False)
    #: Effective padding per axis: how far output 0's field starts before pixel 0.
    padding: tuple[int | Fraction, ...] = dataclass_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # computed once here: every report row reads all three
        size, stride, padding = _derived(self.axes, self.extent)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "padding", padding)

    @property
    def has_positions(self) -> bool:
        """The tensor still holds spatial positions (spatial axes or a token axis)."""
        return bool(self.positions) or self.token_axis is not None

    def moved(self, axes=None, extent=None, positions=None, context: bool | None = None,
              token_axis: int | None | bool = False) -> "ReceptiveField":
        """A copy with some parts replaced (fields are immutable); ``token_axis=False`` keeps it."""
        return _make(self.axes if axes is None else tuple(axes),
                     self.extent if extent is None else tuple(extent),
                     self.positions if positions is None else tuple(positions),
                     self.is_global, self.global_context if context is None else context,
                     self.token_axis if token_axis is False else token_axis)


def _derived(axes: tuple[tuple[AxisField, ...], ...], extent: tuple[int, ...]
             ) -> tuple[tuple[int | Fraction, ...], tuple[int | Fraction, ...], tuple[int | Fraction, ...]]:
    """``size``, ``stride`` and ``padding`` of a :class:`ReceptiveField` with these pieces and extent."""
    size, stride, padding = [], [], []
    for pieces, n in zip(axes, extent):
        if len(pieces) == 1:
            piece = pieces[0]
            size.append(piece.size)
            stride.append(piece.stride)
            padding.append(piece.padding)
        else:
            size.append(_span(pieces, n))
            stride.append(max(p.stride for p in pieces))
            padding.append(max(p.padding for p in pieces))
    return tuple(size), tuple(stride), tuple(padding)


def _make(axes: tuple[tuple[AxisField, ...], ...], extent: tuple[int, ...], positions: tuple[int, ...] = (),
          is_global: bool = False, context: bool = False, token_axis: int | None = None) -> ReceptiveField:
    """``ReceptiveField(axes, extent, positions, is_global, context, token_axis)``, built in one step.

    The analysis builds one field per layer: filling the instance at once spares the frozen
    dataclass's call per attribute. The result equals the constructor's in every attribute.
    """
    field = object.__new__(ReceptiveField)
    size, stride, padding = _derived(axes, extent)
    object.__setattr__(field, "__dict__", {
        "axes": axes, "extent": extent, "positions": positions, "is_global": is_global,
        "global_context": context, "token_axis": token_axis, "size": size, "stride": stride, "padding": padding})
    return field


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


def _globalize(field: ReceptiveField, positions: tuple[int, ...] = (), token_axis: int | None = None,
               extent: tuple[int, ...] | None = None) -> ReceptiveField:
    """Union over all output positions: the field of a value that reads the whole map.

    ``positions``/``token_axis``/``extent``: where the result still holds positions (the
    token map after attention); none after global pooling or flatten.
    """
    if field.is_global:
        axes = field.axes
    else:
        axes = []
        for pieces, n in zip(field.axes, field.extent):
            start = min(p.start(0) for p in pieces)
            end = max(p.end(max(n - 1, 0)) for p in pieces)
            axes.append((AxisField(0, end - start + 1, -start),))
    if extent is None:
        extent = field.extent if positions or token_axis is not None else (1,) * len(axes)
    return _make(tuple(axes), tuple(extent), tuple(positions), True, field.global_context, token_axis)


def _window(layer: Layer, field: ReceptiveField, extent: tuple[int, ...], transposed: bool) -> ReceptiveField:
    axes = []
    kernel, stride, dilation, pads = layer.kernel, layer.stride, layer.dilation, layer.pads_begin
    for axis, pieces in enumerate(field.axes):
        k, s = kernel[axis], stride[axis]
        d, p = dilation[axis], pads[axis]
        reach = d * (k - 1)
        if transposed:
            axes.append(tuple(AxisField(Fraction(q.stride) / s, q.size + Fraction(reach, s) * q.stride,
                                        q.padding + Fraction(reach - p, s) * q.stride) for q in pieces))
        elif len(pieces) == 1:
            q = pieces[0]
            axes.append((AxisField(q.stride * s, q.size + reach * q.stride, q.padding + p * q.stride),))
        else:
            axes.append(tuple([AxisField(q.stride * s, q.size + reach * q.stride, q.padding + p * q.stride)
                               for q in pieces]))
    return _make(tuple(axes), extent, field.positions, field.is_global, field.global_context)


def _token_window(layer: Layer, field: ReceptiveField, x: tuple[int, ...] | None) -> ReceptiveField | None:
    """A 1-d window along a token axis (next-ViT's ``AvgPool1d`` of sr x sr tokens before its
    keys and values): with the tokens in row-major order, a window that never crosses the end of
    a row (no padding, the stride divides the row, the window no longer than the stride) is a
    window along the last spatial axis, and the output tokens a map that many times narrower.
    ``None`` otherwise (windows straddling rows see pixels of two rows)."""
    out = layer.output_shape
    if x is None or out is None or len(x) != 3 or field.token_axis != 2 or len(layer.kernel or ()) != 1:
        return None
    k, s, d = layer.kernel[0], layer.stride[0], layer.dilation[0]
    row = field.extent[-1]
    if x[2] != math.prod(field.extent) or any(layer.pads_begin or ()) or any(layer.pads_end or ()) \
            or row % s or d * (k - 1) + 1 > s:
        return None
    extent = (*field.extent[:-1], row // s)
    if out[2] != math.prod(extent):
        return None
    last = tuple(AxisField(q.stride * s, q.size + d * (k - 1) * q.stride, q.padding) for q in field.axes[-1])
    return _make((*field.axes[:-1], last), extent, (), False, field.global_context, 2)


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


def input_dependent(graph: Graph) -> set[str]:
    """Names of the layers whose output depends on a model input with spatial axes.

    The other layers compute values from parameters and constants alone (a conv applied to
    ``torch.zeros`` inside ``forward``): their field is none.
    """
    found: set[str] = set()
    preds = graph._pred  # a plain dict: this loop runs once per layer
    for layer in graph.layers():
        name = layer.name
        if layer.op in INPUT_OPS:
            if _standard(layer.output_shape):
                found.add(name)
        elif not found.isdisjoint(preds[name]):
            found.add(name)
    return found


def receptive_fields(graph: Graph, *, live: set[str] | None = None) -> dict[str, ReceptiveField | None]:
    """Receptive field of every layer's output; ``None`` where it is unknown or not spatial.

    A field is unknown downstream of ops archlint does not understand (``Op.OTHER``)
    and of reshapes that scramble spatial axes. Layers computed from constants alone have
    no field, and merges leave them out.

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

    ``live`` is :func:`input_dependent`'s answer when the caller has it already.
    """
    fields: dict[str, ReceptiveField | None] = {}
    if live is None:
        live = input_dependent(graph)
    for layer in graph.layers():
        name = layer.name
        if name not in live:
            fields[name] = _field(layer, []) if layer.op is Op.INPUT else None
            continue
        producers = graph.inputs_of(name)
        if len(producers) == 1:  # a layer in series (it is live, so its one producer is too)
            inputs = [fields.get(producers[0])]
        else:
            inputs = [fields.get(p) for p in producers if p in live]
        fields[name] = _field(layer, inputs)
    return fields


#: ``_standard`` by rank, for the ranks real tensors have.
_STANDARD = tuple(tuple(range(2, rank)) for rank in range(9))


def _standard(shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Positions of the spatial axes of an NCHW-style tensor: ``(2, 3)`` for rank 4."""
    if not shape:
        return ()
    rank = len(shape)
    return _STANDARD[rank] if rank < len(_STANDARD) else tuple(range(2, rank))


def _extent_at(shape: tuple[int, ...] | None, positions: tuple[int, ...]) -> tuple[int, ...] | None:
    if shape is None or (positions and max(positions) >= len(shape)):
        return None
    return tuple(map(shape.__getitem__, positions))


def _global_window(layer: Layer) -> bool:
    """A pooling window that reads the whole map at once (global pooling however it is written:
    ResNet's 7x7 average pool on its 7x7 map), or an unpadded conv whose kernel is the map (a dense layer)."""
    if layer.op in POOL_OPS:
        return single_window_over_map(layer)
    return layer.op in CONV_OPS and whole_map_window(layer)


def _field(layer: Layer, inputs: list[ReceptiveField | None]) -> ReceptiveField | None:
    op, out = layer.op, layer.output_shape
    if op in INPUT_OPS:
        positions = _standard(out)
        one = AxisField(1, 1, 0)  # ints stay ints until a resize or transposed conv
        return ReceptiveField(tuple((one,) for _ in positions), _extent_at(out, positions), positions) \
            if positions else None
    if len(inputs) > 1 and op is Op.RESHAPE:
        inputs = inputs[:1]  # view_as, expand_as: the other operand gives only a shape
    if len(inputs) == 1:  # the common case, without the general bookkeeping
        field = inputs[0]
        if field is None:
            return None
        if field.is_global:
            return _global_through(layer, field)
        aligned, context = inputs, field.global_context
    else:
        if not inputs or None in inputs:
            return None
        if op in _DENSE and sum(f.has_positions for f in inputs) > 1:
            return _product(layer, inputs)
        if op in _DENSE and len(inputs) == 2 and sum(f.has_positions for f in inputs) == 1:
            return _applied_matrix(layer, inputs)
        aligned = [f for f in inputs if not f.is_global]
        context = any(f.global_context or f.is_global for f in inputs)
        mixed = next((f for f in inputs if f.is_global and f.has_positions), None)
        if mixed is not None:  # a map whose every position sees everything (attention output) joins
            hull = _hull(inputs)
            return _global_through(layer, _globalize(hull, mixed.positions, mixed.token_axis, mixed.extent))
        if not aligned:  # everything upstream is already global
            return _global_through(layer, inputs[0])
        field = aligned[0]
    if op in _STACKS and out is not None and layer.input_shapes and layer.input_shapes[0] is not None \
            and len(out) == len(layer.input_shapes[0]) + 1:
        shift = _stacked_shift(layer.input_shapes[0], out, field)
        if shift is None:
            return None
        field, aligned = shift(field), [shift(f) for f in aligned]
    # the two usual cases first (the checks below never match these ops)
    if op in _ELEMENTWISE:
        if op is Op.NORM and len(inputs) == 1 and layer.input_shapes and out is not None \
                and out != layer.input_shapes[0]:
            return _statistic(layer, field)
        return _elementwise(layer, field, aligned, context, inputs)
    if op in SPATIAL_OPS and len(inputs) == 1:
        x = layer.input_shapes[0] if layer.input_shapes else None
        transposed = op in _TRANSPOSED
        if field.token_axis is not None and not transposed:
            return _token_window(layer, field, x)
        if field.positions != _standard(x):
            return None  # windowed ops work on NCHW; a field on other axes cannot follow
        extent = _extent_at(out, field.positions)
        if extent is None:
            return None
        if not transposed and _global_window(layer):
            return _globalize(field)  # one window reads the whole map: a dense layer, or global pooling
        return _window(layer, field, extent, transposed)
    if op is Op.FLATTEN and len(inputs) == 1:
        return _reshaped(layer, field)  # a flatten that keeps a token axis whole is a reshape
    if op is Op.GLOBAL_POOL:
        return _globalize(field)
    if op in _DENSE:
        # a dense layer mixes its last axis; over channels (NHWC, tokens) it is pointwise
        last = len(out) - 1 if out is not None else None
        if len(aligned) > 1 or last is None:
            return _globalize(field)
        if last in field.positions or field.token_axis == last:  # over positions: a token-mixing MLP
            extent = field.extent if field.token_axis is not None else _extent_at(out, field.positions)
            return _globalize(field, field.positions, field.token_axis, extent)
        if field.token_axis is not None:
            return field.moved(context=context)
        return field.moved(extent=_extent_at(out, field.positions), context=context)
    if len(inputs) != 1:
        return None
    if op is Op.RESHAPE:
        return _reshaped(layer, field)
    x = layer.input_shapes[0] if layer.input_shapes else None
    if op is Op.SLICE and (field.token_axis is not None or field.positions != _standard(x)):
        follow = _follow_slice(x, out, field)
        return None if follow is None else field.moved(positions=follow[0], token_axis=follow[1])
    if op is Op.PAD and field.positions != _standard(x) and _pads_other_axes(layer, field, x, out):
        return field  # a pad of channels on a token map (a constant column of ones) leaves each position's field
    if field.positions != _standard(x):
        return None  # windowed ops work on NCHW; a field on other axes cannot follow
    extent = _extent_at(out, field.positions)
    if extent is None:
        return None
    if op is Op.RESIZE:
        return _resize(layer, field, extent)
    if op in (Op.PAD, Op.SLICE):
        if op is Op.SLICE and not layer.starts and extent != field.extent:
            return None  # a split along a spatial axis: offset per output unknown
        return _shift(layer, field, extent)
    return None


def _removed_axes(x: tuple[int, ...], out: tuple[int, ...]) -> list[int] | None:
    """The axes of ``x`` that a reduction without ``keepdim`` dropped to give ``out`` (matched in order)."""
    removed, kept = [], 0
    for axis, n in enumerate(x):
        if kept < len(out) and out[kept] == n:
            kept += 1
        else:
            removed.append(axis)
    return removed if kept == len(out) else None


def _statistic(layer: Layer, field: ReceptiveField) -> ReceptiveField | None:
    """A mean, sum or max over some axes (read as a per-position statistic): global pooling when it
    reduces an axis that holds positions (a ViT's ``x.mean(1)`` over tokens), per position otherwise."""
    x, out = layer.input_shapes[0], layer.output_shape
    held = field.positions if field.token_axis is None else (field.token_axis,)
    if len(out) == len(x):  # keepdim: reduced axes have length 1
        reduced = [a for a in range(len(x)) if out[a] != x[a]]
        return _globalize(field) if any(a in held for a in reduced) else field
    removed = _removed_axes(x, out)
    if removed is None:
        return None
    if any(a in held for a in removed):
        return _globalize(field)
    shift = lambda a: a - sum(r < a for r in removed)  # noqa: E731
    return field.moved(positions=tuple(map(shift, field.positions)),
                       token_axis=None if field.token_axis is None else shift(field.token_axis))


def _pads_other_axes(layer: Layer, field: ReceptiveField, x, out) -> bool:
    """Whether a pad leaves every axis that holds positions as it was (it pads channels only)."""
    if x is None or out is None or len(x) != len(out):
        return False
    begin, end = layer.pads_begin or (), layer.pads_end or ()
    held = field.positions if field.token_axis is None else (field.token_axis,)
    return all(x[a] == out[a] and not (0 <= a - 2 < min(len(begin), len(end)) and (begin[a - 2] or end[a - 2]))
               for a in held)


def _elementwise(layer: Layer, field: ReceptiveField, aligned: list[ReceptiveField], context: bool,
                 inputs: list[ReceptiveField | None]) -> ReceptiveField | None:
    """Add, mul, concat, activations and norms: the union of the aligned operands' fields."""
    out = layer.output_shape
    if len(aligned) > 1 and any(f.positions != field.positions or f.extent != field.extent
                                or f.token_axis != field.token_axis for f in aligned):
        return None  # spatially misaligned operands: no single field per position
    if field.token_axis is not None:
        tokens = math.prod(field.extent)
        length = out[field.token_axis] if out is not None and field.token_axis < len(out) else None
        # more tokens than positions: tokens from parameters joined (a class token), which see no pixel
        if length is None or length < tokens or (length > tokens and len(aligned) > 1):
            return None
    else:
        same_shape = field is inputs[0] and layer.input_shapes and out == layer.input_shapes[0]
        if not same_shape and _extent_at(out, field.positions) != field.extent:
            return None
    if len(aligned) == 1:
        return field if context == field.global_context else field.moved(context=context)
    axes = [_union([p for f in aligned for p in f.axes[a]]) for a in range(len(field.extent))]
    if None in axes:
        return None  # too many pieces to follow
    return field.moved(axes, context=context)


def _hull(fields: list[ReceptiveField]) -> ReceptiveField:
    """The global field spanning everything any of ``fields`` sees (no positions)."""
    spans = [_globalize(f) for f in fields]
    axes = []
    for a in range(len(spans[0].axes)):
        axes.append(_union([f.axes[a][0] for f in spans if len(f.axes) == len(spans[0].axes)]))  # all stride 0
    context = any(f.global_context for f in fields)
    return _make(tuple(axes), (1,) * len(axes), (), True, context)


def grid_operand(layer: Layer, inputs: list[ReceptiveField]) -> int | None:
    """Which operand of a product of two position-holding activations gives the result its positions.

    0 when the left operand's token axis is its rows (queries in ``Q @ K^T``, attention
    weights in ``A @ V``), else 1 when the right operand's token axis is its columns; None
    when the result keeps no token axis. The other operand (keys, values) is contracted:
    its positions are mixed into every output and its grid is not the result's.
    """
    shapes, out = layer.input_shapes, layer.output_shape
    if out is None or len(shapes) < 2 or shapes[0] is None or shapes[1] is None or len(out) < 2:
        return None
    left, right = inputs[0], inputs[1]
    if left.token_axis is not None and left.token_axis == len(shapes[0]) - 2:
        return 0
    if right.token_axis is not None and right.token_axis == len(shapes[1]) - 1:
        return 1
    return None


def _product(layer: Layer, inputs: list[ReceptiveField]) -> ReceptiveField:
    """A product of two activations that both hold positions (attention): global.

    The result keeps a token axis where an operand's token axis is not the contracted one:
    the rows of the left operand or the columns of the right one (:func:`grid_operand`).
    """
    hull = _hull(inputs)
    kept = grid_operand(layer, inputs)
    if kept is None:
        return hull
    out = layer.output_shape
    return _globalize(hull, token_axis=len(out) - 2 + kept, extent=inputs[kept].extent)


def _contracted_axis(layer: Layer, operand: int, rank: int) -> int:
    """The axis of operand ``operand`` (of rank ``rank``) that a product sums over."""
    return rank - 1 if operand == 0 or layer.op is Op.LINEAR else rank - 2


def _applied_matrix(layer: Layer, inputs: list[ReceptiveField]) -> ReceptiveField | None:
    """A product of a map that holds positions with an activation that holds none (a matrix computed
    from the input, such as the row and column mixing matrices of bilinear attention).

    Summed over a position axis of the map, every output reads that whole axis: the result is
    global, and keeps the map's positions when it keeps its shape (a square mixing matrix).
    Summed over channels, it is pointwise in positions, with global context.
    """
    operand = 0 if inputs[0].has_positions else 1
    field = inputs[operand]
    shapes, out = layer.input_shapes, layer.output_shape
    x = shapes[operand] if len(shapes) == len(inputs) else None
    if x is None or out is None or len(out) != len(x):
        return None
    contracted = _contracted_axis(layer, operand, len(x))
    if contracted not in field.positions and field.token_axis != contracted:
        extent = field.extent if field.token_axis is not None else _extent_at(out, field.positions)
        return field.moved(extent=extent, context=True) if extent == field.extent else None
    hull = _hull(inputs)
    if tuple(out) != tuple(x):
        return hull
    return _globalize(hull, field.positions, field.token_axis, field.extent)


def _global_through(layer: Layer, field: ReceptiveField) -> ReceptiveField:
    """A global field passes every op unchanged; only where its positions go is followed."""
    if not field.has_positions:
        return field
    op, out = layer.op, layer.output_shape
    x = layer.input_shapes[0] if layer.input_shapes else None
    follow = None
    if op is Op.GLOBAL_POOL or out is None or x is None:
        follow = None
    elif op in (Op.RESHAPE, Op.FLATTEN):
        if layer.perm:
            follow = (tuple(layer.perm.index(p) for p in field.positions),
                      None if field.token_axis is None else layer.perm.index(field.token_axis))
        else:
            follow = _follow_reshape(x, out, field)
    elif op is Op.SLICE:
        follow = _follow_slice(x, out, field, resized=True)
    elif op in (Op.LINEAR, Op.MATMUL):
        if len(out) == len(x):  # over channels, or over positions (a token-mixing MLP): the axes stay
            follow = (field.positions, field.token_axis)
    elif len(out) == len(x):
        follow = (field.positions, field.token_axis)
    if follow is None:
        return _globalize(field)
    extent = _extent_at(out, follow[0]) if follow[0] else field.extent
    return _globalize(field, follow[0], follow[1], extent)


def _prefixes(shape: tuple[int, ...]) -> list[int]:
    """Products of the axes before each axis."""
    result, total = [], 1
    for n in shape:
        result.append(total)
        total *= n
    return result


def _kept_axis(x: tuple[int, ...], out: tuple[int, ...], axis: int) -> int | None:
    """Where a reshape from ``x`` to ``out`` leaves axis ``axis`` whole (same length, same
    product of the axes before it), or ``None``."""
    before = _prefixes(x)[axis]
    for b, (n, p) in enumerate(zip(out, _prefixes(out))):
        if n == x[axis] and p == before:
            return b
    return None


def _follow_reshape(x, out, field: ReceptiveField) -> tuple[tuple[int, ...], int | None] | None:
    """``(positions, token_axis)`` after a reshape, or ``None`` if the positions are scrambled.

    Spatial axes kept whole stay spatial; consecutive spatial axes merged into one become
    a token axis; a token axis split into the spatial extent becomes spatial axes again.
    """
    if field.token_axis is not None:
        t = field.token_axis
        kept = _kept_axis(x, out, t)
        if kept is not None:
            return (), kept
        n = len(field.extent)
        if x[t] == math.prod(field.extent):
            before = _prefixes(x)[t]
            for b, p in enumerate(_prefixes(out)[: len(out) - n + 1]):
                if p == before and tuple(out[b:b + n]) == tuple(field.extent):
                    return tuple(range(b, b + n)), None
        return None
    positions = field.positions
    mapped = [_kept_axis(x, out, a) for a in positions]
    if None not in mapped:
        return tuple(mapped), None
    if positions and list(positions) == list(range(positions[0], positions[0] + len(positions))):
        before, tokens = _prefixes(x)[positions[0]], math.prod(x[a] for a in positions)
        for b, (n, p) in enumerate(zip(out, _prefixes(out))):
            if n == tokens and p == before:
                return (), b
    return None


def _follow_slice(x, out, field: ReceptiveField, resized: bool = False
                  ) -> tuple[tuple[int, ...], int | None] | None:
    """``(positions, token_axis)`` after a slice, split or select that leaves the positions whole.

    ``resized``: the positions may be sliced too (a global field, which no slice changes).
    """
    if x is None or out is None:
        return None
    axes = field.positions if field.token_axis is None else (field.token_axis,)
    if len(out) == len(x):
        if not resized and any(out[a] != x[a] for a in axes):
            return None
        return field.positions, field.token_axis
    if len(out) != len(x) - 1:
        return None
    removed = [r for r in range(len(x)) if tuple(out) == tuple(x[:r]) + tuple(x[r + 1:])]
    removed = [r for r in removed if r not in axes] or removed
    if not removed or removed[0] in axes:
        return None  # one position selected: its place in the map is not recorded
    r = removed[0]
    shift = lambda a: a - 1 if a > r else a  # noqa: E731
    return tuple(map(shift, field.positions)), None if field.token_axis is None else shift(field.token_axis)


def _stacked_shift(x: tuple[int, ...], out: tuple[int, ...], field: ReceptiveField):
    """For a stack (a concat along a new axis, ``torch.stack``): the function moving an operand's
    field to the output's axes, or ``None`` when the new axis is not known to lie off the
    positions. Each position keeps its field: the operands are only laid side by side."""
    held = field.positions if field.token_axis is None else (field.token_axis,)
    moves = set()
    for new in range(len(out)):  # where the new axis may be (several places when lengths repeat)
        if tuple(out[:new]) + tuple(out[new + 1:]) == tuple(x):
            moves.add(tuple(a + (a >= new) for a in held))
    if len(moves) != 1:
        return None
    moved = moves.pop()
    if field.token_axis is not None:
        return lambda f: f.moved(token_axis=moved[0]) if f.token_axis == field.token_axis else f
    return lambda f: f.moved(positions=moved) if f.positions == field.positions else f


def _reshaped(layer: Layer, field: ReceptiveField) -> ReceptiveField | None:
    """Follow spatial axes through transpose/reshape; ``None`` if they are scrambled."""
    out, x = layer.output_shape, layer.input_shapes[0] if layer.input_shapes else None
    if out is None or x is None:
        return None
    if layer.perm:
        if field.token_axis is not None:
            return field.moved(token_axis=layer.perm.index(field.token_axis))
        positions = tuple(layer.perm.index(p) for p in field.positions)
        return field.moved(extent=_extent_at(out, positions), positions=positions)
    follow = _follow_reshape(x, out, field)
    if follow is not None:
        return field.moved(positions=follow[0], token_axis=follow[1])
    if len(out) <= 2:
        return _globalize(field)
    return None


def input_extent(graph: Graph, layer: str) -> tuple[int, ...]:
    """Spatial size of the first graph input that ``layer`` depends on (``()`` if none is known).

    The input the receptive field of ``layer`` is measured against.
    """
    candidates = graph.graph.get("inputs") or [n for n in graph if graph.layer(n).op is Op.INPUT]
    upstream = _upstream(graph, layer)
    for name in candidates:
        if name in upstream:
            return spatial_dims(graph.layer(name).output_shape)
    return ()


def _upstream(graph: Graph, layer: str) -> set[str]:
    """``layer`` and every layer it depends on (``nx.ancestors`` on the plain adjacency dicts, several times faster)."""
    preds = graph._pred
    seen, stack = {layer}, [layer]
    while stack:
        for producer in preds[stack.pop()]:
            if producer not in seen:
                seen.add(producer)
                stack.append(producer)
    return seen


@dataclass(frozen=True)
class FieldLoss:
    """Where the receptive field of a model output became unknown."""

    #: First layer (in topological order) on the way to ``output`` whose field is unknown
    #: while the fields of its inputs are known.
    layer: str
    #: The model output whose field is unknown.
    output: str
    #: Why the field cannot follow that layer, as a phrase.
    reason: str

    def describe(self) -> str:
        """One sentence for the report's notes."""
        return (f"summary receptive field unknown: the field is lost at '{self.layer}' ({self.reason}), "
                f"so the field of output '{self.output}' is unknown; the receptive-field rules do not judge it")


def _loss_reason(layer: Layer) -> str:
    if layer.op is Op.OTHER:
        return f"archlint does not understand its op '{layer.source_op}'"
    if layer.op is Op.RESHAPE:
        return "a reshape that scatters the spatial axes, such as a window partition or patch unfolding"
    if layer.op in (Op.ADD, Op.MUL, Op.CONCAT):
        return "its inputs are not aligned pixel to pixel"
    return f"its {layer.op.value.replace('_', ' ')} output does not line up with the spatial axes of its input"


def lost_receptive_field(graph: Graph, fields: dict[str, ReceptiveField | None], *,
                         live: set[str] | None = None) -> FieldLoss | None:
    """Where the field of a model output that depends on the input was lost; ``None`` if none was.

    ``live`` is :func:`input_dependent`'s answer when the caller has it already.
    """
    if live is None:
        live = input_dependent(graph)
    outputs = graph.graph.get("outputs") or [n for n in graph if graph.out_degree(n) == 0]
    lost = next((o for o in outputs if o in live and fields.get(o) is None), None)
    if lost is None:
        return None
    upstream = _upstream(graph, lost)
    for layer in graph.layers():
        name = layer.name
        if name in upstream and name in live and fields.get(name) is None and all(
                fields.get(p) is not None for p in graph.inputs_of(name) if p in live):
            return FieldLoss(name, lost, _loss_reason(layer))
    return FieldLoss(lost, lost, _loss_reason(graph.layer(lost)))


def summary_receptive_field(graph: Graph, fields: dict[str, ReceptiveField | None], *,
                            lost: FieldLoss | None | EllipsisType = ...) -> str | None:
    """Name of the model's last spatial map: the last layer whose output still holds positions.

    Its field may be global (a transformer's last token map). ``None`` when no layer holds
    positions, or when a model output's field is unknown (see :func:`lost_receptive_field`):
    an earlier layer with a known field is not the last spatial map, so it is not offered.
    ``lost`` is :func:`lost_receptive_field`'s answer when the caller has it already.
    """
    if (lost_receptive_field(graph, fields) if lost is ... else lost) is not None:
        return None
    for layer in reversed(list(graph.layers())):
        field = fields.get(layer.name)
        if field is not None and field.has_positions and layer.op is not Op.INPUT:
            return layer.name
    return None
