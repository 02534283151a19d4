"""How evenly a transposed convolution spreads its input over its output positions.

A transposed convolution with kernel ``k``, stride ``s``, dilation ``d`` and begin padding
``p`` writes input position ``i`` through tap ``t`` to output position ``o = i*s + t*d - p``.
Away from the borders, output ``o`` therefore receives one contribution per tap ``t`` with
``t*d - p = o (mod s)``: the count depends only on the output's *phase* ``o mod s``. When the
phases get unequal counts (``k`` not a multiple of ``s`` for ``d = 1``), the output carries a
periodic pattern, the checkerboard artifacts of Odena, Dumoulin & Olah, "Deconvolution and
Checkerboard Artifacts" (Distill, 2016). :func:`phase_coverage` gives the counts per axis;
in 2-D the most covered output phase gets the product of the per-axis maxima, the least
covered the product of the minima.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..graph import Graph, Layer, Op

__all__ = ["PhaseCoverage", "axis_phase_counts", "phase_coverage", "phase_coverages"]

#: Strides and kernels above these (per axis) are not analysed: no real upsampling layer has them.
MAX_PHASES = 1 << 12
MAX_TAPS = 1 << 16


def axis_phase_counts(kernel: int, stride: int, dilation: int = 1, pad_begin: int = 0) -> tuple[int, ...]:
    """Contributions per output phase ``0 .. stride-1`` along one axis, away from the borders.

    Examples
    --------
    >>> axis_phase_counts(3, 2), axis_phase_counts(4, 2), axis_phase_counts(2, 2), axis_phase_counts(1, 2)
    ((2, 1), (2, 2), (1, 1), (1, 0))
    >>> axis_phase_counts(3, 2, pad_begin=1)   # padding moves the phases, not the counts
    (1, 2)
    """
    counts = [0] * stride
    for tap in range(kernel):
        counts[(tap * dilation - pad_begin) % stride] += 1
    return tuple(counts)


@dataclass(frozen=True)
class PhaseCoverage:
    """Contributions per output phase of a transposed convolution, one tuple per spatial axis."""

    counts: tuple[tuple[int, ...], ...]

    @property
    def most(self) -> int:
        """Contributions to the most covered output position (product of per-axis maxima)."""
        return math.prod(max(c) for c in self.counts)

    @property
    def least(self) -> int:
        """Contributions to the least covered output position (0: some outputs get none)."""
        return math.prod(min(c) for c in self.counts)

    @property
    def ratio(self) -> Fraction | None:
        """``most / least``; ``None`` when some outputs receive no contribution at all."""
        return Fraction(self.most, self.least) if self.least else None

    @property
    def axis_ratios(self) -> tuple[Fraction | None, ...]:
        return tuple(Fraction(max(c), min(c)) if min(c) else None for c in self.counts)

    @property
    def uneven(self) -> bool:
        return any(max(c) != min(c) for c in self.counts)


def phase_coverage(layer: Layer) -> PhaseCoverage | None:
    """:class:`PhaseCoverage` of a transposed convolution; ``None`` for other layers.

    Examples
    --------
    >>> from archlint.graph import Layer, Op
    >>> up = Layer("up", Op.CONV_TRANSPOSE, "ConvTranspose", (1, 8, 31, 31), ((1, 8, 16, 16),), kernel=(3, 3),
    ...            stride=(2, 2), pads_begin=(1, 1), pads_end=(1, 1), dilation=(1, 1))
    >>> cov = phase_coverage(up)
    >>> cov.counts, cov.most, cov.least, cov.ratio
    (((1, 2), (1, 2)), 4, 1, Fraction(4, 1))
    """
    if layer.op is not Op.CONV_TRANSPOSE or not layer.kernel:
        return None
    rank = len(layer.kernel)
    stride = layer.stride or (1,) * rank
    dilation = layer.dilation or (1,) * rank
    pads = layer.pads_begin or (0,) * rank
    if not len(stride) == len(dilation) == len(pads) == rank or any(s < 1 or s > MAX_PHASES for s in stride) \
            or any(k < 1 or k > MAX_TAPS for k in layer.kernel):
        return None
    return PhaseCoverage(tuple(axis_phase_counts(k, s, d, p) for k, s, d, p in zip(layer.kernel, stride, dilation,
                                                                                     pads)))


def phase_coverages(graph: Graph) -> Mapping[str, PhaseCoverage]:
    """:func:`phase_coverage` of every transposed convolution, in graph order."""
    result = {}
    for layer in graph.layers():
        coverage = phase_coverage(layer)
        if coverage is not None:
            result[layer.name] = coverage
    return result
