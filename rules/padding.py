"""Rules about border padding (AL3xx): windows that shrink the feature map for lack of padding."""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import (Finding, Graph, Op, Option, Rule, RuleContext, Severity, border_loss_ends,
                          format_dims, format_number)

__all__ = ["UnpaddedShrinkingWindow", "CumulativeBorderLoss", "get_rules"]


def _per_axis(values, unit: str) -> str:
    """``2 px per axis`` when the axes agree, else ``2x4 px``."""
    values = tuple(values)
    if len(set(values)) == 1:
        return f"{format_number(values[0])} {unit} per axis"
    return f"{format_dims(values)} {unit}"


def _pads(pairs) -> str:
    pairs = tuple(tuple(p) for p in pairs)
    if len(set(pairs)) == 1:
        b, e = pairs[0]
        return f"{b} per side" if b == e else f"({b} before, {e} after) per axis"
    return " x ".join(f"({b}, {e})" for b, e in pairs) + " (before, after)"


class UnpaddedShrinkingWindow(Rule):
    """Conv or pooling window with less padding than it needs to keep the map size.

    ## What it flags
    Each conv (and, unless `flag-unpadded-pools` is off, each max/average pool) whose
    windows overlap (`d*(k-1) + 1 > stride`) and whose padding, counting `Pad` layers right
    before it, is below `d*(k-1)` in total, so that it gives fewer than `ceil(n / stride)`
    outputs. The finding gives the sizes, the border lost in the layer's input pixels and in
    model-input pixels (missing outputs x stride x the effective stride of the layer's input),
    the padding it has and the padding that keeps the size. A single unpadded window as large
    as the map along an axis (a 7x7 conv on a 7x7 map: a dense layer written as a conv, AL501's;
    a 7x7 average pool there: global pooling) reads every position and is not flagged.
    ## Why it matters
    Each unpadded layer trims `d*(k-1)` pixels of border: border content is seen by fewer
    outputs, sizes stop being powers of two, and skip connections or decoders need crops
    to line up (the valid convolutions of U-Net need exactly that). The loss adds up along
    the network; see AL302 for the total.
    ## Example
    Fixture `valid_conv_chain_5` (a 1x1 conv, then five 3x3 convs with padding 0 on a
    32x32 input) gives five findings, `body.2` to `body.10`: each loses 2 px per axis
    (32 -> 30, 30 -> 28, ...) and needs padding 1 per side. In fixture `mixed_valid_net` the
    unpadded 3x3 stride-2 pool gives 15 instead of 16 outputs (2 px), the 3x3 conv with
    dilation 2 then gives 11 instead of 15 (4 px of its input, 8 input px at effective
    stride 2, needs padding 2), and the 2x2 conv 10 instead of 11 (2 input px, needs
    padding (0, 1)); the 2x2 stride-2 conv that follows tiles the map and is not flagged.
    Fixture `same_conv_chain_5` (the same convs with padding 1, the first one as a reflection
    `Pad` layer before the conv) passes.
    ## Fix
    Pad by `d*(k-1)/2` on each side for an odd kernel `k` with dilation `d` (1 for 3x3, 2 for
    5x5 or a 3x3 with dilation 2). An even kernel needs an odd total `d*(k-1)` that cannot be
    split evenly: pad `floor` before and `ceil` after (as TensorFlow `SAME` and PyTorch
    `padding="same"` do), which shifts the map by half a pixel, or prefer an odd kernel.
    Where valid padding is deliberate, suppress the finding for those layers.
    """

    code, name, severity = "AL301", "unpadded-shrinking-window", Severity.INFO
    options = (Option("flag-unpadded-pools", bool, default=True,
                      help="Also flag overlapping max/average pools (e.g. 3x3 stride 2) without "
                           "padding. Non-overlapping pools (kernel <= stride) are never flagged. "
                           "Turn off where unpadded stem pools are a deliberate choice."),)
    analyses = ("border_losses",)
    fingerprint_keys = ("kernel", "stride", "dilation")  # the window that shrinks

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        pools = ctx.options["flag-unpadded-pools"]
        for name, loss in ctx.analysis("border_losses").items():
            layer = graph.layer(name)
            if layer.op is not Op.CONV and not pools:
                continue
            kernel = format_dims(layer.kernel)
            dil = "" if all(d == 1 for d in layer.dilation) else f" dilation {format_dims(layer.dilation)}"
            stride = "" if all(s == 1 for s in layer.stride) else f" stride {format_dims(layer.stride)}"
            lost = _per_axis(loss.pixels, "input px") if loss.pixels is not None \
                else _per_axis(loss.lost, "px of its input")
            even = any(b != e for b, e in loss.padding_needed)
            fix = f"pad {_pads(loss.padding_needed)} to keep {format_dims(loss.kept_size)}"
            if even:
                fix += "; an even kernel needs uneven padding (floor before, ceil after) or an odd kernel"
            yield ctx.finding(
                name, arguments=_padding_argument(loss.padding_needed), message=
                f"{layer.op.value} '{name}' ({kernel}{stride}{dil}, padding {_pads(loss.padding)}) shrinks "
                f"{format_dims(loss.input_size)} to {format_dims(loss.output_size)} "
                f"instead of {format_dims(loss.kept_size)}: "
                f"loses {lost}; needs padding {_pads(loss.padding_needed)}",
                fix=fix,
                data={"kernel": list(layer.kernel), "stride": list(layer.stride), "dilation": list(layer.dilation),
                      "padding": [list(p) for p in loss.padding],
                      "padding_needed": [list(p) for p in loss.padding_needed],
                      "input_size": list(loss.input_size), "output_size": list(loss.output_size),
                      "kept_size": list(loss.kept_size), "lost": list(loss.lost),
                      "border_loss": None if loss.pixels is None else list(loss.pixels)})


def _padding_argument(needed) -> dict | None:
    """``{"padding": 1}`` (or one value per axis) when the padding needed is even on both sides."""
    if not needed or any(before != after for before, after in needed):
        return None
    values = tuple(before for before, _ in needed)
    return {"padding": values[0] if len(set(values)) == 1 else values}


class CumulativeBorderLoss(Rule):
    """Unpadded layers together trim a large share of the input.

    ## What it flags
    The border lost to under-padded windows (see AL301), summed in model-input pixels along
    the path to a final feature map, when it exceeds `max-border-loss` of the input size
    along some axis. It is reported once per path at its last shrinking layer; where
    branches merge, the lossiest one is followed, so parallel branches that shrink alike
    (Inception blocks) give one finding. The finding gives the loss per axis, the input size, the
    fraction against the limit and the shrinking layers.
    ## Why it matters
    A few unpadded layers are harmless; many of them, or a few at coarse effective strides,
    throw away a sizable frame of the image: objects near the edge are seen by fewer
    outputs, the last feature map covers a shrunken region, and dense outputs no longer
    align with the input without cropping.
    ## Example
    Fixture `valid_conv_chain_5` (five unpadded 3x3 convs on 32x32, 32 -> 22) gives one
    finding at `body.10`: 10 px lost per axis, 10/32 = 0.3125 of the input (> 0.1).
    Fixture `mixed_valid_net` gives one at `even`: 2 + 8 + 2 = 12 px of 32 = 0.375.
    Fixture `same_conv_chain_5` (all padded) passes.
    ## Fix
    Pad the layers AL301 lists (`d*(k-1)/2` per side for odd kernels), starting with those
    at the coarsest effective stride, where each missing pixel costs the most input pixels.
    """

    code, name, severity = "AL302", "cumulative-border-loss", Severity.WARNING
    options = (Option("max-border-loss", float, default=0.1,
                      help="Largest fraction of the input side that unpadded windows may trim in total. "
                           "0.1 lets a 224x224 network lose ~22 px (eleven unpadded 3x3 convs at stride 1, "
                           "or one at stride 8) before it is flagged."),)
    analyses = ("cumulative_border_losses",)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-border-loss"]
        cumulative = ctx.analysis("cumulative_border_losses")
        for name in border_loss_ends(graph, cumulative):
            total = cumulative[name]
            fraction = total.fraction
            if fraction <= limit:
                continue
            yield ctx.finding(
                name,
                f"unpadded windows trim {format_dims(total.pixels)} of {format_dims(total.input_size)} input px up to "
                f"'{name}' ({float(fraction):.0%} > {limit:.0%}) over {len(total.layers)} layers",
                fix=f"pad the shrinking layers ({', '.join(total.layers)})",
                data={"border_loss": list(total.pixels), "input_size": list(total.input_size),
                      "fraction": float(fraction), "fractions": [float(f) for f in total.fractions],
                      "limit": limit, "layers": list(total.layers)})


def get_rules() -> list[type[Rule]]:
    return [UnpaddedShrinkingWindow, CumulativeBorderLoss]
