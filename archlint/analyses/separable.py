"""Cost of replacing a standard convolution by a depthwise-separable one (Howard et al., 2017).

A standard ``K1 x K2`` convolution from ``Cin`` to ``Cout`` channels costs, per output
position, ``K1*K2*Cin*Cout`` multiply-accumulates. Its depthwise-separable replacement is
a depthwise ``K1 x K2`` convolution (``groups = Cin``, same stride, padding and dilation,
hence the same output size) followed by a pointwise ``1x1`` convolution from ``Cin`` to
``Cout``: ``K1*K2*Cin + Cin*Cout`` per output position, a ratio of
``1/Cout + 1/(K1*K2)`` (MobileNets, section 3.1). Both are counted at the conv's own
output size, so stride and padding enter through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..graph import CONV_OPS, Layer
from .macs import layer_macs
from .shapes import spatial_dims, whole_map_window

__all__ = ["SeparableCost", "separable_cost"]


@dataclass(frozen=True)
class SeparableCost:
    """MACs of a standard convolution and of its depthwise + pointwise replacement."""

    macs: int
    depthwise_macs: int
    pointwise_macs: int

    @property
    def macs_after(self) -> int:
        """MACs of the replacement (depthwise + pointwise)."""
        return self.depthwise_macs + self.pointwise_macs

    @property
    def macs_saved(self) -> int:
        """MACs the replacement saves (negative if it costs more)."""
        return self.macs - self.macs_after

    @property
    def saving_ratio(self) -> Fraction:
        """Saved MACs as a fraction of the current ones."""
        return Fraction(self.macs_saved, self.macs) if self.macs else Fraction(0)


def separable_cost(layer: Layer) -> SeparableCost | None:
    """The :class:`SeparableCost` of a standard (``groups = 1``) conv with a kernel larger than 1x1.

    ``None`` for other layers (grouped or depthwise convs, 1x1 convs, non-convs), for
    convs whose shapes are unknown, and for convs whose one unpadded window reads the whole
    map (:func:`~archlint.analyses.shapes.whole_map_window`): those are dense layers, for
    which global pooling saves far more than a factorization.

    Examples
    --------
    A 3x3 conv from 32 to 64 channels with stride 2 and padding 1 on 112x112 (56x56 output):

    >>> from archlint.graph import Layer, Op
    >>> conv = Layer("c", Op.CONV, "Conv", (1, 64, 56, 56), ((1, 32, 112, 112),), kernel=(3, 3),
    ...              stride=(2, 2), pads_begin=(1, 1), pads_end=(1, 1), dilation=(1, 1),
    ...              groups=1, in_channels=32, out_channels=64)
    >>> cost = separable_cost(conv)
    >>> cost.macs, cost.depthwise_macs, cost.pointwise_macs, cost.macs_saved
    (57802752, 903168, 6422528, 50477056)
    >>> float(cost.saving_ratio) == 1 - 1 / 64 - 1 / 9
    True
    """
    if layer.op not in CONV_OPS or layer.groups != 1 or math.prod(layer.kernel or (1,)) <= 1 \
            or whole_map_window(layer):
        return None
    out = layer.output_shape
    cin, cout = layer.in_channels, layer.out_channels
    if out is None or cin is None or cout is None or len(out) != len(layer.kernel) + 2:
        return None
    positions = out[0] * math.prod(spatial_dims(out))
    depthwise = positions * cin * math.prod(layer.kernel)
    pointwise = positions * cin * cout
    return SeparableCost(layer_macs(layer), depthwise, pointwise)
