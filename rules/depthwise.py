"""Rules about depthwise-separable convolutions (AL4xx): standard convs that could be factorized."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from archlint.api import (Finding, Graph, Op, Option, Rule, RuleContext, Severity, format_dims, separable_cost,
                          si_count)

__all__ = ["ReplaceableStandardConv", "get_rules"]


class ReplaceableStandardConv(Rule):
    """Standard KxK convolution that a depthwise-separable one would make much cheaper.

    ## What it flags
    Each convolution with `groups = 1` and a kernel larger than 1x1 whose
    depthwise-separable replacement (a depthwise KxK conv with the same stride, padding and
    dilation, then a pointwise 1x1 conv) saves at least `min-separable-saving` of its
    multiply-accumulates. Per output position the conv costs `K*K*Cin*Cout` MACs and the
    replacement `K*K*Cin + Cin*Cout`, both at the conv's own output size. Convs with fewer
    than `min-separable-in-channels` input channels (an RGB stem) are skipped, and so are
    convs whose one unpadded window covers the whole map: they are dense layers (AL501). The finding
    gives the MACs now, after and saved (`macs_saved`); the report's summary adds up the
    savings of all findings.
    Patch projections (kernel = stride) are judged like any conv: the patch merging between
    stages (ConvNeXt's 2x2/2 `downsample`, Twins' `patch_embeds`) and the `sr` conv that
    shrinks the keys and values of spatial-reduction attention (PVT, Twins). The stride rules
    leave `sr` alone (its grid never reaches the output), but its cost is real, and the
    replacement is what PVTv2's linear spatial-reduction attention does with a fixed average
    (pooling, then a 1x1 conv: 82.1% vs 82.0% ImageNet top-1 for pvt_v2_b2_li vs b2).
    A ViT's patch embedding reads the RGB input and is skipped like any stem.
    ## Why it matters
    The replacement costs `1/Cout + 1/K^2` of the conv: 8 to 9 times fewer MACs and
    parameters for a 3x3 conv with many channels. MobileNet v1 (Howard et al., 2017, Table 4)
    needs 569M mult-adds against 4866M for the same network with standard convs, for 1.1
    points less ImageNet accuracy (70.6% vs 71.7%).
    ## Example
    Fixture `plain_convs` (input 1x3x32x32) gives three findings. `conv1` (3x3, 16->24,
    stride 2, padding 1, 16x16 output): 256*9*16*24 = 884,736 MACs now, 256*(9*16 + 16*24) =
    135,168 after, 749,568 saved (84.7%). `conv2` (3x3, 24->32, 16x16): 1,769,472 now, 251,904
    after, 1,517,568 saved. `conv3` (3x3, 32->32, stride 2, no padding, 7x7 output): 451,584
    now, 64,288 after, 387,296 saved. The RGB stem (3 input channels) and the 1x1 head are
    not flagged; the summary's MACs saved is 2,654,432.
    Fixture `separable_net` (an RGB stem, then a depthwise 3x3 and a pointwise 1x1) passes.
    ## Fix
    Replace the conv by `Conv2d(Cin, Cin, K, stride, padding, dilation, groups=Cin)` followed by
    (normalization, activation and) `Conv2d(Cin, Cout, 1)`. Expect a small accuracy drop;
    widen the network a little if needed. Keep standard convs where they are cheap anyway.
    """

    code, name, severity = "AL401", "replaceable-standard-conv", Severity.INFO
    options = (
        Option("min-separable-saving", float, default=0.5,
               help="Flag only when the replacement saves at least this fraction of the conv's MACs "
                    "(1 - 1/Cout - 1/K^2). At 0.5, 3x3 convs with at least 3 output channels qualify; "
                    "2x2 convs at least 4; raising it spares convs with few outputs."),
        Option("min-separable-in-channels", int, default=8,
               help="Skip convs with fewer input channels. A depthwise conv on an RGB or grayscale "
                    "input filters each colour alone and cannot combine them spatially, and the "
                    "stem's saving is small in absolute terms (MobileNet itself keeps a standard "
                    "3x3 stem). Set to 1 to check every conv."),
    )
    fingerprint_keys = ("kernel", "in_channels", "out_channels")  # the conv's definition

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["min-separable-saving"]
        exact = Fraction(limit)  # compared in integers: macs_saved / macs >= limit
        numerator, denominator = exact.numerator, exact.denominator
        min_in = ctx.options["min-separable-in-channels"]
        limit_text = f"{limit:.0%}"
        conv = Op.CONV  # read once: an enum member read goes through the enum class's lookup
        for layer in graph.layers():
            if layer.op is not conv:
                continue
            cost = separable_cost(layer)
            cin = layer.in_channels
            if cost is None or cin < min_in or not cost.macs:
                continue
            macs, after = cost.macs, cost.macs_after
            saved = macs - after
            if saved * denominator < numerator * macs:
                continue
            name, cout, kernel = layer.name, layer.out_channels, format_dims(layer.kernel)
            ratio = saved / macs
            yield ctx.finding(
                name,
                f"conv '{name}' ({kernel}, {cin}->{cout}) costs {si_count(macs)} MACs; as depthwise {kernel} + "
                f"pointwise 1x1 {si_count(after)}, saving {si_count(saved)} ({ratio:.0%} >= {limit_text})",
                fix=f"use a depthwise {kernel} conv (groups={cin}) and a 1x1 conv {cin}->{cout}",
                data={"macs": macs, "macs_after": after, "macs_saved": saved,
                      "depthwise_macs": cost.depthwise_macs, "pointwise_macs": cost.pointwise_macs,
                      "saving_ratio": ratio, "limit": limit, "kernel": list(layer.kernel),
                      "in_channels": cin, "out_channels": cout})


def get_rules() -> list[type[Rule]]:
    return [ReplaceableStandardConv]
