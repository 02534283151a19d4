"""The receptive field of the model as a whole (its summary field) and how much of the input it covers.

The summary field is that of the last layer whose output still has spatial extent
(:func:`~archlint.analyses.receptive_field.summary_receptive_field`). The report's summary,
the receptive-field budget and the input-coverage rule all read it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import EllipsisType

from ..graph import Graph
from .receptive_field import ReceptiveField, input_extent, summary_receptive_field

__all__ = ["SummaryField", "summary_field"]


@dataclass(frozen=True)
class SummaryField:
    """Receptive field of ``layer`` (size, effective stride and padding per axis) on the input.

    ``input_extent`` is the spatial size of the model input the layer reads (empty when
    unknown); ``global_context`` says a globally pooled branch joined in on the way;
    ``is_global`` that every position of the layer's map already sees the whole input (a
    token map after attention over all positions).
    """

    layer: str
    size: tuple[Fraction, ...]
    stride: tuple[Fraction, ...]
    padding: tuple[Fraction, ...]
    input_extent: tuple[int, ...]
    global_context: bool
    is_global: bool

    @property
    def coverage(self) -> tuple[Fraction, ...]:
        """Field size over input size, per axis (empty when the input size is unknown)."""
        if len(self.input_extent) != len(self.size):
            return ()
        return tuple(Fraction(s) / n for s, n in zip(self.size, self.input_extent))

    @property
    def min_coverage(self) -> Fraction:
        """The smallest per-axis coverage (0 when unknown)."""
        return min(self.coverage, default=Fraction(0))

    @property
    def covers(self) -> bool:
        """Whether the field spans the whole input along every axis."""
        return all(s >= n for s, n in zip(self.size, self.input_extent))


def summary_field(graph: Graph, fields: Mapping[str, ReceptiveField | None], *,
                  last: str | None | EllipsisType = ...) -> SummaryField | None:
    """The :class:`SummaryField` of ``graph``; ``None`` when no layer has a known spatial field.

    ``last`` is :func:`summary_receptive_field`'s answer when the caller has it already.

    Examples
    --------
    >>> from archlint.graph import Graph, Layer, Op
    >>> from archlint.analyses.receptive_field import receptive_fields
    >>> g = Graph(inputs=["x"])
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 3, 32, 32)))
    >>> g.add_node("c", layer=Layer("c", Op.CONV, "Conv", (1, 4, 16, 16), ((1, 3, 32, 32),), kernel=(3, 3),
    ...     stride=(2, 2), pads_begin=(1, 1), pads_end=(1, 1), dilation=(1, 1), in_channels=3, out_channels=4))
    >>> g.add_edge("x", "c", index=0)
    >>> s = summary_field(g, receptive_fields(g))
    >>> s.layer, [int(v) for v in s.size], s.input_extent, s.min_coverage, s.covers
    ('c', [3, 3], (32, 32), Fraction(3, 32), False)
    """
    if last is ...:
        last = summary_receptive_field(graph, fields)
    if last is None:
        return None
    field = fields[last]
    return SummaryField(last, field.size, field.stride, field.padding, tuple(input_extent(graph, last)),
                        field.global_context, field.is_global)
