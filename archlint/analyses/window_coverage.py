"""Which input positions a strided window reads.

``window_coverage`` counts, per spatial axis, the real input positions (padding excluded)
that at least one window of a convolution or pooling layer reads, and sorts the unread
ones into *gaps* (missed even if the windows went on past the end: stride larger than
the dilated kernel, or dilation holes) and the *edge* (missed only because the last
window stops early).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ..graph import READING_OPS, Graph, Layer, Op

__all__ = ["AxisCoverage", "WindowCoverage", "axis_coverage", "window_coverage", "window_coverages", "covered_windows", "unread_windows"]

@dataclass(frozen=True)
class AxisCoverage:
    """Input positions along one axis: ``size`` real ones, ``read`` by some window.

    ``gap`` unread positions would stay unread however far the windows went on;
    ``edge`` unread positions at the end would be read by windows past the last one.
    ``size == read + gap + edge``.
    """

    size: int
    read: int
    gap: int
    edge: int

    @property
    def unread(self) -> int:
        return self.size - self.read


@dataclass(frozen=True)
class WindowCoverage:
    """Coverage of a layer's input, one :class:`AxisCoverage` per spatial axis."""

    axes: tuple[AxisCoverage, ...]

    @property
    def positions(self) -> int:
        """Real input positions (product over axes)."""
        return math.prod(a.size for a in self.axes)

    @property
    def read(self) -> int:
        """Positions read by at least one window (the windows form a product over axes)."""
        return math.prod(a.read for a in self.axes)

    @property
    def unread(self) -> int:
        return self.positions - self.read

    @property
    def has_gaps(self) -> bool:
        """Some axis has positions that no window would read however far the windows went on."""
        for a in self.axes:  # a loop, not any() over a generator: rules ask this of every windowed layer
            if a.gap:
                return True
        return False

    @property
    def unread_fraction(self) -> Fraction:
        """Exact fraction of real input positions that no window reads."""
        return Fraction(self.unread, self.positions) if self.positions else Fraction(0)


def _read_marks(size: int, kernel: int, stride: int, pad_begin: int, dilation: int, windows: int) -> int:
    """Number of positions in ``[0, size)`` read by windows ``0 .. windows-1``.

    Each tap reads an arithmetic progression of step ``stride``; progressions with the same
    residue modulo ``stride`` are merged as intervals, so memory and time grow with the
    kernel, not with ``size`` (hostile models declare sizes of 2^40).
    """
    spans: dict[int, list[tuple[int, int]]] = {}
    for tap in range(kernel):
        first = tap * dilation - pad_begin  # position read by window 0 at this tap
        lo = -(first // stride) if first < 0 else 0  # first window whose tap is inside
        hi = min(windows - 1, (size - 1 - first) // stride) if size - 1 - first >= 0 else -1
        if lo <= hi:
            a = first + lo * stride
            r = a % stride
            spans.setdefault(r, []).append(((a - r) // stride, (a - r) // stride + hi - lo))
    count = 0
    for intervals in spans.values():
        intervals.sort()
        cur_lo, cur_hi = intervals[0]
        for lo, hi in intervals[1:]:
            if lo > cur_hi + 1:
                count += cur_hi - cur_lo + 1
                cur_lo, cur_hi = lo, hi
            elif hi > cur_hi:
                cur_hi = hi
        count += cur_hi - cur_lo + 1
    return count


#: Kernels wider than this (taps per axis) are not analysed for coverage: no real layer has them.
MAX_COVERAGE_TAPS = 1 << 16


def axis_coverage(size: int, kernel: int, stride: int, pad_begin: int, dilation: int,
                  windows: int) -> AxisCoverage:
    """Coverage of one axis of length ``size`` by ``windows`` windows.

    Window ``w`` reads positions ``w*stride - pad_begin + j*dilation`` for ``j < kernel``;
    positions outside ``[0, size)`` are padding and do not count.

    Examples
    --------
    A 1x1 stride-2 conv on 56 positions reads every other one (ResNet's downsample):

    >>> axis_coverage(56, kernel=1, stride=2, pad_begin=0, dilation=1, windows=28)
    AxisCoverage(size=56, read=28, gap=28, edge=0)

    A 3x3 stride-2 conv without padding on 224 positions gives 111 windows; the last
    position is never read, though a further window would have read it:

    >>> axis_coverage(224, kernel=3, stride=2, pad_begin=0, dilation=1, windows=111)
    AxisCoverage(size=224, read=223, gap=0, edge=1)
    """
    read = _read_marks(size, kernel, stride, pad_begin, dilation, windows)
    reach = size - 1 + pad_begin  # windows starting at or before the last real position
    grid = max(windows, reach // stride + 1 if reach >= 0 else 0)
    continued = _read_marks(size, kernel, stride, pad_begin, dilation, grid)
    return AxisCoverage(size, read, size - continued, continued - read)


def window_coverage(layer: Layer) -> WindowCoverage | None:
    """Coverage of the input of a conv or pooling layer; ``None`` for other layers or unknown shapes.

    Examples
    --------
    >>> from archlint.graph import Layer, Op
    >>> down = Layer("layer2.0.downsample.0", Op.CONV, "Conv", (1, 128, 28, 28), ((1, 64, 56, 56),),
    ...              kernel=(1, 1), stride=(2, 2), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1))
    >>> cov = window_coverage(down)
    >>> cov.read, cov.positions, cov.unread_fraction
    (784, 3136, Fraction(3, 4))
    """
    if layer.op not in READING_OPS or not layer.kernel:
        return None
    x = layer.input_shapes[0] if layer.input_shapes else None
    out = layer.output_shape
    rank = len(layer.kernel)
    if x is None or out is None or len(x) != rank + 2 or len(out) != rank + 2:
        return None
    if max(layer.kernel) > MAX_COVERAGE_TAPS:
        return None
    return _coverage(tuple(x[2:]), tuple(layer.kernel), tuple(layer.stride), tuple(layer.pads_begin or (0,) * rank),
                     tuple(layer.dilation or (1,) * rank), tuple(out[2:]))


def window_coverages(graph: Graph) -> dict[str, WindowCoverage | None]:
    """:func:`window_coverage` of every layer (``None`` for layers without windows)."""
    return {layer.name: window_coverage(layer) for layer in graph.layers()}


@lru_cache(maxsize=4096)
def _coverage(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], pads: tuple[int, ...],
              dilation: tuple[int, ...], windows: tuple[int, ...]) -> WindowCoverage:
    """Coverage of one window configuration; models repeat a few configurations many times."""
    return WindowCoverage(tuple(axis_coverage(*args) for args in zip(sizes, kernel, stride, pads, dilation, windows)))


def covered_windows(graph: Graph, coverages: Mapping[str, WindowCoverage | None],
                    ops: Collection[Op]) -> Iterator[tuple[Layer, WindowCoverage]]:
    """The layers whose op is in ``ops`` and whose input coverage is known, with it, in graph order.

    ``coverages`` maps layer names to :func:`window_coverage` (the engine's
    ``"window_coverages"`` analysis).
    """
    for layer in graph.layers():
        if layer.op in ops:
            coverage = coverages.get(layer.name)
            if coverage is not None:
                yield layer, coverage


def unread_windows(graph: Graph, coverages: Mapping[str, WindowCoverage | None], ops: Collection[Op],
                   limit: float) -> Iterator[tuple[Layer, WindowCoverage]]:
    """The layers of ``ops`` whose windows leave gaps and never read more than ``limit`` of their input.

    The check a conv rule and a pooling rule share: gaps between windows (not positions
    lost only at the end edge) and the exact unread fraction of the real input positions
    compared with the rule's limit, in graph order.
    """
    for layer, coverage in covered_windows(graph, coverages, ops):
        if coverage.has_gaps and coverage.unread_fraction > limit:
            yield layer, coverage
