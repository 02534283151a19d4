"""Whether the branches that an add or concat merges are centred on the same input pixels.

Output position ``x`` of a layer sees input pixels ``[x*J - P, x*J - P + R - 1]`` along an axis
(:mod:`archlint.analyses.receptive_field`), so its field is centred on ``x*J - P + (R - 1)/2``.
Two branches merged position by position should agree on that centre: where one branch went
through an even window or asymmetric padding, or a nearest upsampling that rounds down, its
features at ``x`` are centred elsewhere than those of the other branch, and the merge adds
features of different places. :func:`merge_shifts` gives, per merge, the largest difference
of centres between two branches, per axis, in input pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..graph import Graph, Op
from .receptive_field import AxisField, ReceptiveField

__all__ = ["MergeShift", "field_centre", "merge_shifts"]

_MERGES = frozenset({Op.ADD, Op.CONCAT})


@dataclass(frozen=True)
class MergeShift:
    """Misalignment of the branches of one add or concat.

    ``shift`` per spatial axis is the largest difference, in input pixels, between the field
    centres of two branches at the same output position (over the first and last position;
    both ends agree unless the branches have different effective strides); ``branches`` are the
    two producers that differ most along the worst axis (the one centred earlier first),
    ``centres`` their centres at output position 0, per axis, and ``stride`` the effective
    stride of the merged map (the coarsest branch's), per axis: the spacing of its positions
    in input pixels.
    """

    layer: str
    branches: tuple[str, str]
    shift: tuple[Fraction, ...]
    centres: tuple[tuple[Fraction, ...], tuple[Fraction, ...]]
    stride: tuple[Fraction, ...]

    @property
    def shift_in_strides(self) -> tuple[Fraction, ...]:
        """The shift per axis in positions of the merged map (``shift / stride``)."""
        return tuple(Fraction(s) / j if j else Fraction(0) for s, j in zip(self.shift, self.stride))

    @property
    def largest(self) -> Fraction:
        return max(self.shift, default=Fraction(0))


def _piece_centre(piece: AxisField, x: int) -> Fraction:
    return piece.start(x) + Fraction(piece.size - 1, 2)


def field_centre(field: ReceptiveField, axis: int, x: int) -> Fraction:
    """Centre, in input pixels, of the field of output position ``x`` along ``axis``.

    Where the field has several pieces (branches of different strides met before), the centre
    of their union.

    Examples
    --------
    >>> from archlint.analyses.receptive_field import AxisField, ReceptiveField
    >>> f = ReceptiveField(((AxisField(2, 2, 0),),), (4,))   # a 2x2 stride-2 pool on the input
    >>> field_centre(f, 0, 0), field_centre(f, 0, 3)
    (Fraction(1, 2), Fraction(13, 2))
    """
    pieces = field.axes[axis]
    if len(pieces) == 1:
        return _piece_centre(pieces[0], x)
    start = min(p.start(x) for p in pieces)
    end = max(p.end(x) for p in pieces)
    return Fraction(start + end, 2)


def _doubled_centre(field: ReceptiveField, axis: int, x: int) -> int | Fraction:
    """Twice :func:`field_centre`: an int while the field's numbers are, so merges with many branches
    compare integers instead of building a Fraction per branch and position."""
    pieces = field.axes[axis]
    if len(pieces) == 1:
        piece = pieces[0]
        return 2 * piece.start(x) + piece.size - 1
    return min(p.start(x) for p in pieces) + max(p.end(x) for p in pieces)


def merge_shifts(graph: Graph, fields: Mapping[str, ReceptiveField | None]) -> dict[str, MergeShift]:
    """:class:`MergeShift` of every add and concat whose branches have known, aligned local fields.

    Branches without spatial extent (squeeze-excitation scales, globally pooled context) are
    not aligned with any pixel and are left out; merges with fewer than two local branches,
    or whose branches differ in extent or axes, are skipped.

    Examples
    --------
    A 2x2 stride-2 average pool and a 3x3 stride-2 conv with padding 1 on one input, added:
    the pool's outputs are centred half an input pixel later (ResNet-D's shortcut).

    >>> from archlint.graph import Graph, Layer, Op
    >>> from archlint.analyses.receptive_field import receptive_fields
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 4, 8, 8)))
    >>> g.add_node("conv", layer=Layer("conv", Op.CONV, "Conv", (1, 4, 4, 4), ((1, 4, 8, 8),), kernel=(3, 3),
    ...            stride=(2, 2), pads_begin=(1, 1), pads_end=(1, 1), dilation=(1, 1)))
    >>> g.add_node("pool", layer=Layer("pool", Op.AVG_POOL, "AveragePool", (1, 4, 4, 4), ((1, 4, 8, 8),),
    ...            kernel=(2, 2), stride=(2, 2), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1)))
    >>> g.add_node("add", layer=Layer("add", Op.ADD, "Add", (1, 4, 4, 4), ((1, 4, 4, 4), (1, 4, 4, 4))))
    >>> for u, v, i in (("x", "conv", 0), ("x", "pool", 0), ("conv", "add", 0), ("pool", "add", 1)):
    ...     g.add_edge(u, v, index=i)
    >>> m = merge_shifts(g, receptive_fields(g))["add"]
    >>> m.branches, m.shift, m.stride, m.shift_in_strides
    (('conv', 'pool'), (Fraction(1, 2), Fraction(1, 2)), (Fraction(2, 1), Fraction(2, 1)), (Fraction(1, 4), Fraction(1, 4)))
    """
    result: dict[str, MergeShift] = {}
    for layer in graph.layers():
        if layer.op not in _MERGES:
            continue
        producers = graph.inputs_of(layer.name)
        local = [(p, fields.get(p)) for p in dict.fromkeys(producers)]
        if any(f is None for _, f in local):
            continue
        local = [(p, f) for p, f in local if not f.is_global and f.extent]
        if len(local) < 2:
            continue
        first = local[0][1]
        if any(f.extent != first.extent or len(f.axes) != len(first.axes) for _, f in local):
            continue
        ends = [(0, max(n - 1, 0)) for n in first.extent]
        shift, pairs = [], []
        for axis, xs in enumerate(ends):
            worst = (-2, local[0][0], local[0][0])  # in half pixels, as _doubled_centre gives them
            for x in xs:
                at = [(_doubled_centre(f, axis, x), p) for p, f in local]
                low, high = min(at), max(at)
                if high[0] - low[0] > worst[0]:
                    worst = (high[0] - low[0], low[1], high[1])
            shift.append(Fraction(worst[0], 2))
            pairs.append(worst)
        low, high = max(pairs)[1:]
        fields_of = dict(local)
        stride = tuple(Fraction(max(f.stride[axis] for _, f in local)) for axis in range(len(ends)))
        result[layer.name] = MergeShift(
            layer.name, (low, high), tuple(shift),
            tuple(tuple(field_centre(fields_of[p], axis, 0) for axis in range(len(ends))) for p in (low, high)), stride)
    return result
