"""Rules about pooling and spatial information (AL5xx): flattened heads, gapped pooling, narrow fields."""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import (POOL_OPS, Finding, Graph, Option, Rule, RuleContext, Severity, flattened_dense_heads,
                          format_dims, input_coverage, unread_windows)

__all__ = ["FlattenedMapIntoDense", "PoolSkipsInput", "ReceptiveFieldMissesInput", "get_rules"]


class FlattenedMapIntoDense(Rule):
    """Feature map with spatial extent flattened straight into a dense layer.

    ## What it flags
    A dense (fully connected) layer that reads a flattened `C x H x W` feature map with more
    than `max-flattened-positions` spatial positions (`H * W`), when that layer holds at least
    `min-dense-param-share` of all the model's parameters. A standard conv whose one unpadded
    window covers its whole `H x W` input map is such a dense layer too (the
    fully-connected-as-conv form: timm's VGG writes VGG's `25088 -> 4096` layer as a 7x7 conv
    on the 7x7 map); AL301/AL302 leave it alone. The finding sits on the dense layer (or that
    conv) and gives its parameters now and after global average pooling (`C * out + bias`).

    ## Why it matters
    The dense layer needs one weight per input position, channel and output, so it dwarfs the
    convolutions: torchvision's VGG-16 puts 102,764,544 of its 138,357,544 parameters (74%) into
    `classifier.0` (25088 -> 4096). It also ties the model to one input size and learns each
    position separately instead of reusing features across positions. Global average pooling
    before the classifier (Lin et al., "Network in Network", 2014; ResNet, GoogLeNet) removes
    nearly all of those weights and lets the network take any input size.

    ## Example
    Fixture `flatten_head_8x8` (an 8x8x8 map flattened into `Linear(512, 10)`) gives one
    finding on `fc`: 5,130 dense parameters, 95.8% of the model's 5,354, versus 90 with global
    average pooling (8 * 10 + 10), saving 5,040. On VGG-16 the saving is 100,663,296
    (102,764,544 now, 2,101,248 = 512 * 4096 + 4096 with pooling), and the same on timm's VGG-16,
    where that layer is the 7x7 conv `pre_logits.fc1`. Fixture `conv_dense_head` (that head in
    small: `Conv2d(8, 32, 7)` on an 8x7x7 map) gives one finding on `pre_logits.fc1`: 12,576
    parameters, 288 with pooling. Fixture `gap_head_8x8` (the same backbone as
    `flatten_head_8x8`, globally pooled before `Linear(8, 10)`) passes.

    ## Fix
    Pool the map globally first (`nn.AdaptiveAvgPool2d(1)` then `nn.Flatten()`), so the dense
    layer reads `C` features; add depth or width to the convolutions if the head needs capacity.
    """

    code, name, severity = "AL501", "flattened-map-into-dense", Severity.WARNING
    options = (
        Option("max-flattened-positions", int, default=1,
               help="Most spatial positions (H*W) a dense layer may read flattened. 1 flags anything but "
                    "an already pooled 1x1 map; raise it to accept small maps (e.g. 4 for a 2x2 map kept "
                    "on purpose for coarse localisation)."),
        Option("min-dense-param-share", float, default=0.2,
               help="Flag only dense layers holding at least this share of all parameters. A small dense "
                    "head on a large backbone costs little; the flaw matters when the head is a large part "
                    "of the model."),
    )
    analyses = ("costs",)
    fingerprint_keys = ("channels",)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit, min_share = ctx.options["max-flattened-positions"], ctx.options["min-dense-param-share"]
        for head in flattened_dense_heads(graph, ctx.analysis("costs")):
            if head.positions <= limit or head.share < min_share:
                continue
            what = (f"conv '{head.dense}' ({format_dims(head.spatial)} kernel, no padding) is a dense layer on its whole "
                    f"{head.channels}x{format_dims(head.spatial)} input map" if head.as_conv else
                    f"dense layer '{head.dense}' reads a flattened {head.channels}x{format_dims(head.spatial)} map")
            yield ctx.finding(
                head.dense,
                f"{what}: "
                f"{head.positions} positions (limit {limit}), {head.params:,} parameters "
                f"({100 * head.share:.1f}% of the model; limit {100 * min_share:.0f}%); "
                f"with global average pooling {head.params_with_gap:,}",
                fix=f"global-average-pool the map before '{head.flatten}' so '{head.dense}' reads "
                    f"{head.channels} features{' (as a 1x1 conv or a dense layer)' if head.as_conv else ''} "
                    f"(saves {head.params_saved:,} parameters)",
                data={"flatten": head.flatten, "channels": head.channels, "spatial": list(head.spatial),
                      "positions": head.positions, "limit": limit, "in_features": head.in_features,
                      "out_features": head.out_features, "params": head.params, "bias": head.bias,
                      "params_with_gap": head.params_with_gap, "params_saved": head.params_saved,
                      "model_params": head.model_params, "param_share": head.share, "as_conv": head.as_conv,
                      "min_param_share": min_share})


class PoolSkipsInput(Rule):
    """Pooling whose windows leave gaps: some input positions are never read.

    ## What it flags
    A max or average pooling layer whose windows, along some spatial axis, leave positions
    that no window reads however far they went on: a stride larger than the dilated window
    (`stride > dilation * (kernel - 1) + 1`) or dilation holes that line up with the
    stride. The finding gives the exact share of real input positions (padding excluded)
    never read, against `max-unread`. Positions lost only at the end edge are
    AL202's; convolutions with gaps are AL201's.

    ## Why it matters
    Positions between windows never reach the output, and neither does the work that
    computed them: the layers before spend MACs on values that are thrown away, and a
    feature lying in a gap is invisible to the rest of the network (aliasing).
    Pooling normally tiles (`kernel == stride`) or overlaps (`kernel > stride`).

    ## Example
    Fixture `pool_stride_gap` gives two findings: `pool` (2x2 max pool, stride 3, on a 12x12
    map) reads rows and columns 0,1,3,4,6,7,9,10, i.e. 8x8 = 64 of 144 positions, leaving 80
    (5/9) unread; `subsample` (1x1 average pool, stride 2, on 4x4) reads 2x2 = 4 of 16,
    leaving 12 (3/4) unread. Fixture `pool_overlapping` (3x3/2 max pool with padding 1, then
    a tiling 2x2/2 average pool) passes.

    ## Fix
    Make the window at least as large as the stride (`kernel_size >= stride`), e.g. a 3x3
    window with stride 3, or use a strided convolution that learns what to keep.
    """

    code, name, severity = "AL502", "pool-skips-input", Severity.WARNING
    options = (
        Option("max-unread", float, default=0.0, aliases=("max-unread-share",),
               help="Largest fraction of a pooling layer's real input positions that no window may read. "
                    "0 flags any gap; raise it (e.g. to 0.6) to accept deliberate subsampling that skips "
                    "fewer positions."),
    )
    analyses = ("window_coverages",)
    fingerprint_keys = ("kernel", "stride")

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-unread"]
        for layer, coverage in unread_windows(graph, ctx.analysis("window_coverages"), POOL_OPS, limit):
            share = coverage.unread_fraction
            yield ctx.finding(
                layer.name,
                f"{layer.op.value.replace('_', ' ')} '{layer.name}' (kernel {format_dims(layer.kernel)}, stride "
                f"{format_dims(layer.stride)}, dilation {format_dims(layer.dilation)}) never reads {coverage.unread} of "
                f"{coverage.positions} input positions ({100 * float(share):.1f}%; limit {100 * limit:.0f}%)",
                fix="make the pooling window at least as large as its stride",
                data={"kernel": list(layer.kernel), "stride": list(layer.stride),
                      "dilation": list(layer.dilation), "read_per_axis": [a.read for a in coverage.axes],
                      "gap_per_axis": [a.gap for a in coverage.axes], "unread": coverage.unread,
                      "positions": coverage.positions, "unread_fraction": share, "limit": limit})


class ReceptiveFieldMissesInput(Rule):
    """Global decision made from features whose receptive field does not span the input.

    ## What it flags
    A network that ends in global pooling, flatten or a dense layer (a conv whose one
    unpadded window reads the whole map, as timm VGG's `pre_logits.fc1`, is one), where the
    summary receptive field (the field of the last layer with spatial extent, as in the
    report) spans less than `min-input-coverage` of the input along some axis. The finding
    sits on that last spatial layer and names the global layer after it.

    ## Why it matters
    Each feature vector that reaches the global layer has seen only a patch of the image, so
    the decision is a vote of local patches: relations between parts farther apart than the
    field (object layout, large objects, context) cannot be learned by the convolutions.
    The effective field is even smaller than the theoretical one (Luo et al., NeurIPS 2016).

    ## Example
    Fixture `shallow_gap_64` (seven 3x3 convolutions, no downsampling, then global average
    pooling, on a 64x64 input) has a 15x15 field (1 + 7 * 2) at `features.13`, the last ReLU:
    15/64 = 23.4% of the input, one finding. Fixture `deep_gap_64` (six 3x3 stride-2 convs,
    field 1 + 2 * (1 + 2 + 4 + 8 + 16 + 32) = 127) passes. Torchvision VGG-16 gives one
    finding at `avgpool`: a 212x212 field on its 224x224 input (94.6%).

    ## Fix
    Grow the field before the global layer: downsample earlier (strided conv or pooling),
    add stages, or use dilated convolutions, until the field reaches the input size.
    """

    code, name, severity = "AL503", "receptive-field-misses-input", Severity.WARNING
    options = (
        Option("min-input-coverage", float, default=1.0,
               help="Smallest receptive field size, as a share of the input size per axis. 1.0: the "
                    "field must cover the whole input (the report's \"covers the input\"); lower it (e.g. "
                    "0.5) for tasks decided by local texture."),
    )
    analyses = ("receptive_fields", "summary_field")

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["min-input-coverage"]
        cov = input_coverage(graph, ctx.analysis("receptive_fields"), summary=ctx.analysis("summary_field"))
        if cov is None or cov.min_coverage >= limit:
            return
        yield ctx.finding(
            cov.layer,
            f"receptive field {format_dims(cov.size)} at '{cov.layer}' spans {100 * float(cov.min_coverage):.1f}% "
            f"of the {format_dims(cov.input_extent)} input (limit {100 * limit:.0f}%) before global layer "
            f"'{cov.head}' ({cov.head_op.replace('_', ' ')})",
            fix="downsample earlier or add stages so the field reaches the input size",
            data={"receptive_field": list(cov.size), "input": list(cov.input_extent),
                  "coverage": [float(c) for c in cov.coverage], "min_coverage": float(cov.min_coverage),
                  "limit": limit, "head": cov.head, "head_op": cov.head_op,
                  "global_context": cov.global_context})


def get_rules() -> list[type[Rule]]:
    return [FlattenedMapIntoDense, PoolSkipsInput, ReceptiveFieldMissesInput]
