"""Rules about strides that skip input or shrink the map too fast (AL2xx)."""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import (POOL_OPS, Finding, Graph, Op, Option, Rule, RuleContext, Severity, covered_windows,
                          format_dims, unread_windows)


class StrideSkipsInput(Rule):
    """Convolution whose windows never read some input positions (stride larger than the kernel).

    ## What it flags
    Each convolution whose windows, along some axis, leave gaps that no window reads:
    a stride larger than the dilated kernel (`stride > dilation*(kernel-1) + 1`, e.g. a
    1x1 conv with stride 2), or a dilated kernel whose holes line up with the stride
    (3x3, dilation 2, stride 2 reads only even positions). The finding gives the exact
    fraction of real input positions (padding excluded) that no window reads, counted per
    axis and multiplied out, against `max-unread`. Positions lost only at the
    end edge are AL202's; pooling layers with gaps are AL502's.

    ## Why it matters
    Activations that no window reads are computed by the layer below and then thrown
    away, and the features of the positions that are read alias the skipped ones. In
    torchvision's ResNet the 1x1 stride-2 projection of every stage's first block
    (`layer2.0.downsample.0`, ...) ignores 3 of every 4 positions of the shortcut.
    Layers that shrink only the keys and values of attention count too: in timm's MViTv2
    the first stage's `pool_k`/`pool_v` (3x3, stride 4) never read 1455 of the 3136 keys
    and values the `qkv` projection computed, and no query attends to those tokens there.

    ## Example
    Fixture `resnet_downsample` (a residual block with a 1x1 stride-2 projection
    `block.downsample` on a 32x32 map) gives one finding: 16 of 32 rows and 16 of 32
    columns are read, so 1 - 256/1024 = 3/4 of the positions are never read (0.75/0.0).
    Torchvision ResNet-18 and ResNet-50 give the same 3/4 at `layer2.0.downsample.0`,
    `layer3.0.downsample.0` and `layer4.0.downsample.0`.

    ## Fix
    Make the kernel at least as large as the stride, or average-pool first: ResNet-D
    (He et al., "Bag of Tricks", CVPR 2019) replaces the 1x1 stride-2 projection by a 2x2
    stride-2 average pool followed by a stride-1 1x1 conv, which reads every position
    (+0.4% ImageNet top-1 for a negligible cost). For dilated kernels, use stride 1 or a
    dilation that is not a multiple of the stride.
    """

    code, name, severity = "AL201", "stride-skips-input", Severity.WARNING
    options = (Option("max-unread", float, default=0.0, aliases=("max-unread-fraction",),
                      help="Largest fraction of a conv's real input positions that no window may read. "
                           "0 flags any gap: skipped positions are computed for nothing."),)
    analyses = ("window_coverages",)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-unread"]
        for layer, coverage in unread_windows(graph, ctx.analysis("window_coverages"), {Op.CONV}, limit):
            fraction = coverage.unread_fraction
            yield ctx.finding(
                layer.name,
                f"conv '{layer.name}' (kernel {format_dims(layer.kernel)}, stride {format_dims(layer.stride)}, dilation "
                f"{format_dims(layer.dilation)}) never reads {fraction} of its input: {coverage.unread} of "
                f"{coverage.positions} positions ({float(fraction):.2f}/{limit})",
                fix="use a kernel at least as large as the stride, or average-pool 2x2 then a stride-1 "
                    "1x1 conv (ResNet-D)",
                data={"unread_fraction": fraction, "limit": limit, "unread": coverage.unread,
                      "positions": coverage.positions, "read_per_axis": [a.read for a in coverage.axes],
                      "gap_per_axis": [a.gap for a in coverage.axes], "kernel": list(layer.kernel),
                      "stride": list(layer.stride), "dilation": list(layer.dilation)})


class WindowMissesInputEdge(Rule):
    """Conv or pooling windows that stop before the end of the input, leaving real rows or columns unread.

    ## What it flags
    Each convolution or max/average pooling layer whose last window, along some axis,
    ends before the last real input position although a further window would have read
    it: e.g. a 3x3 stride-2 conv without padding on 224 positions has 111 windows,
    the last reading 220..222, so position 223 is never read. Padding positions do not
    count as input. The finding gives the unread positions at the end of each axis
    against `max-edge-unread`.

    ## Why it matters
    The dropped rows and columns are computed by the layer below and then ignored, and
    the loss is one-sided: the map is no longer centred on the input, so features drift
    towards the top-left and flipping the input does not flip the output.
    Frameworks drop the remainder silently (floor mode), which is how odd map sizes go
    unnoticed.

    ## Example
    Fixture `edge_unread` gives two findings. `down` (3x3, stride 2, no padding, 32x32
    input) has (32 - 3) // 2 + 1 = 15 windows per axis reading positions 0..30, so row
    and column 31 are never read: 32*32 - 31*31 = 63 positions (1/0 per axis). `pool`
    (2x2 max pool, stride 2, on that 15x15 map) has 7 windows reading 0..13, leaving
    row and column 14: 15*15 - 14*14 = 29 positions (1/0).

    ## Fix
    Pad so that the windows tile the input (`padding = (kernel - 1) // 2` for odd kernels
    with stride 2 on even sizes), choose input sizes that the strides divide, or use
    `ceil_mode=True` for pooling.
    """

    code, name, severity = "AL202", "window-misses-input-edge", Severity.WARNING
    options = (Option("max-edge-unread", int, default=0,
                      help="Real input rows/columns allowed to go unread at the end of an axis because "
                           "the last window stops early. 0: every real position should be read."),)
    analyses = ("window_coverages",)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-edge-unread"]
        for layer, coverage in covered_windows(graph, ctx.analysis("window_coverages"), {Op.CONV, *POOL_OPS}):
            edges = [axis.edge for axis in coverage.axes]
            worst = max(edges, default=0)
            if worst <= limit:
                continue
            kind = "conv" if layer.op is Op.CONV else "pool"
            sizes = [axis.size for axis in coverage.axes]
            pool = layer.op in POOL_OPS and not layer.ceil_mode
            yield ctx.finding(
                layer.name, arguments={"ceil_mode": True} if pool else None, message=
                f"{kind} '{layer.name}' (kernel {format_dims(layer.kernel)}, stride {format_dims(layer.stride)}, "
                f"padding {format_dims(layer.pads_begin)} before and {format_dims(layer.pads_end)} after) on a "
                f"{format_dims(sizes)} input never reads the last {format_dims(edges)} positions of each axis "
                f"({worst}/{limit})",
                fix="pad so the windows tile the input, pick input sizes the strides divide, or use "
                    "ceil_mode for pooling",
                data={"edge_per_axis": edges, "max_edge": worst, "limit": limit, "input": sizes,
                      "unread": coverage.unread, "positions": coverage.positions,
                      "unread_fraction": coverage.unread_fraction})


class AggressiveStrideStep(Rule):
    """Layer that multiplies the effective stride by more than `max-layer-stride` in one step.

    ## What it flags
    Each layer across which the effective stride of the receptive field (the distance,
    in input pixels, between neighbouring output positions) grows by more than
    `max-layer-stride` along some axis: a conv or pool with stride 4 or more, or any
    other op that subsamples as hard (strided slicing, downscaling resize). Layers that
    collapse an axis to a single position (global pooling written as a window) are not
    flagged, nor are layers whose grid reaches no model output: those that feed only
    the keys and values of attention (a product of two position-holding activations,
    `Q @ K^T` then `A @ V`, whose result keeps the queries' positions), such as the
    strided `sr` conv of PVT's spatial-reduction attention or MViTv2's `pool_k`/`pool_v`,
    or only a matrix computed from the input and applied to the map (the adaptive pools
    that summarise rows and columns into the mixing matrices `P`, `Q` of bilinear
    attention, `P @ X @ Q`, in timm's `bat_resnext26ts`).
    They shrink what the attention reads, not the map the network passes on, and
    splitting their stride would not help.

    ## Why it matters
    A step of `s` keeps one position in `s*s`. Every standard backbone (VGG, ResNet,
    DenseNet, MobileNet, EfficientNet, Inception) halves the map per downsampling layer,
    so that the features summarising the dropped positions are built up over several
    layers. A single stride-4 step (AlexNet's 11x11/4 stem, 4x4/4 "patchify" stems)
    compresses 16 positions at once, with one linear map and no nonlinearity in between,
    and aliases whatever the kernel does not low-pass. The default 3 lets stride 2 and 3
    pass and flags 4 and above.

    ## Example
    Fixture `patchify_stem` (a 4x4 stride-4 conv `stem` on a 32x32 input) gives one
    finding at `stem`: the effective stride goes from 1 to 4 on both axes (4/3).

    ## Fix
    Split the step: two stride-2 layers (e.g. 3x3/2 conv then 3x3/2 conv or pool), with
    a nonlinearity in between; ResNet's stem reaches stride 4 as 7x7/2 conv + 3x3/2 pool.
    """

    code, name, severity = "AL203", "aggressive-stride-step", Severity.WARNING
    options = (Option("max-layer-stride", int, default=3,
                      help="Largest factor by which one layer may grow the effective stride along an axis. "
                           "3 passes the stride-2 steps of standard backbones and flags stride >= 4."),)
    analyses = ("stride_steps",)
    fingerprint_keys = ("factor",)  # the stride step itself

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-layer-stride"]
        for name, step in ctx.analysis("stride_steps").items():
            flagged = [f for f, n in zip(step.factor, step.extent) if f > limit and n > 1]
            if not flagged:
                continue
            worst = max(flagged)
            yield ctx.finding(
                name,
                f"'{name}' multiplies the effective stride by {format_dims(step.factor)} in one step (from "
                f"{format_dims(step.before)} to {format_dims(step.after)}) ({worst}/{limit})",
                fix="split the step into stride-2 layers with a nonlinearity in between",
                data={"factor": max(step.factor), "factor_per_axis": list(step.factor), "limit": limit,
                      "stride_before": list(step.before), "stride_after": list(step.after)})


class EarlyDownsampling(Rule):
    """Effective stride above `max-stem-stride` within the first `stem-depth` weighted layers.

    ## What it flags
    Each layer that raises the effective stride (the distance, in input pixels, between
    neighbouring output positions) above `max-stem-stride` along some axis while at most
    `stem-depth` weighted layers (conv, transposed conv, linear, recurrent) lie on the
    longest route from the input to it. Only the layer where the stride rises is flagged.
    As for AL203, layers that feed only the keys and values of attention (PVT's `sr`,
    MViTv2's `pool_k`/`pool_v`) or only a mixing matrix applied to the map (bilinear
    attention's pools) are not flagged: the queries, or the map the matrix is applied to,
    keep the full grid.

    ## Why it matters
    The first layers see a few pixels each and compute edge-level features; shrinking
    the map hard before the network has had a few layers to summarise what it drops
    throws detail away for good, and small objects vanish. The defaults let the standard
    ImageNet stem through: ResNet's 7x7/2 conv + 3x3/2 max pool reaches stride 4 after
    one weighted layer, a trade that cuts the cost of everything after it 16-fold on
    redundant 224x224 photos, kept by ResNet-B/C/D, Inception and DenseNet. Going further
    within the stem (AlexNet's 11x11/4 conv + 3x3/2 pool reaches stride 8 after one layer)
    is flagged. For small inputs (CIFAR 32x32) lower `max-stem-stride` to 1 or 2.

    ## Example
    Fixture `early_stride_stem` (3x3/2 conv `stem`, then two 2x2/2 max pools `pool1` and
    `pool2` on a 64x64 input) gives one finding at `pool2`: the effective stride goes
    2 -> 4 -> 8 with one weighted layer before it (8/4). Fixture `resnet_stem` (7x7/2 conv,
    3x3/2 pool, 3x3 conv, 3x3/2 conv) passes: stride 4 after one layer, stride 8 only
    after three.

    ## Fix
    Move the extra downsampling after a few convolutions (e.g. stride 2 in the stem and
    in the first stage instead of a second pool), or replace the stem by a stack of 3x3
    convs (ResNet-C).
    """

    code, name, severity = "AL204", "early-downsampling", Severity.WARNING
    options = (Option("max-stem-stride", int, default=4,
                      help="Largest effective stride allowed within the stem; 4 admits ResNet's "
                           "7x7/2 conv + 3x3/2 pool."),
               Option("stem-depth", int, default=2,
                      help="How many weighted layers (longest route from the input) make up the stem."))
    analyses = ("stride_steps", "weighted_depths")

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit, stem = ctx.options["max-stem-stride"], ctx.options["stem-depth"]
        depths = ctx.analysis("weighted_depths")
        for name, step in ctx.analysis("stride_steps").items():
            if depths[name] > stem:
                continue
            rising = [s for f, s in zip(step.factor, step.after) if f > 1 and s > limit]
            if not rising:
                continue
            worst = max(rising)
            yield ctx.finding(
                name,
                f"'{name}' raises the effective stride to {format_dims(step.after)} after only {depths[name]} "
                f"weighted layer(s) ({worst}/{limit})",
                fix="downsample further only after a few convolutions, e.g. stride 2 in the first stage "
                    "instead of another pool in the stem",
                data={"stride": worst, "stride_per_axis": list(step.after), "limit": limit,
                      "depth": depths[name], "stem_depth": stem})


def get_rules() -> list[type[Rule]]:
    return [StrideSkipsInput, WindowMissesInputEdge, AggressiveStrideStep, EarlyDownsampling]
