"""Rules about spatial artifacts of the sampling grid (AL7xx): checkerboards, gridding, misaligned merges."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from archlint.api import Finding, Graph, Option, Rule, RuleContext, Severity, format_dims, format_number

__all__ = ["CheckerboardTransposedConv", "GriddingDilatedChain", "MisalignedMerge", "get_rules"]


class CheckerboardTransposedConv(Rule):
    """Transposed convolution whose output positions receive unequal numbers of contributions.

    ## What it flags
    Each transposed convolution whose kernel, along some axis, is not a multiple of its
    stride (more generally: whose taps `t*dilation - padding` do not fall equally often on
    every residue modulo the stride). Away from the borders, output position `o` receives one
    contribution per tap landing on its phase `o mod stride`, so the phases get unequal
    counts. The finding gives the counts per phase and axis, and the ratio of the most to the
    least covered output position (the product of the per-axis maxima over that of the
    minima) against `max-ratio`. A kernel smaller than the stride leaves some output
    positions without any contribution (only the bias): always flagged.

    ## Why it matters
    The uneven overlap prints a periodic pattern on the output, the checkerboard artifacts of
    Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts" (Distill, 2016): the
    network must learn weights that cancel it exactly, and in practice it rarely does, so
    generated images and segmentation masks show a grid at the stride's period. Stacked
    upsampling layers compound it.

    ## Example
    Fixture `decoder_k3s2` (two `ConvTranspose2d(kernel 3, stride 2, padding 1)` upsampling
    8x8 to 15x15 to 29x29) gives two findings, `up1` and `up2`: along each axis one phase
    gets taps 0 and 2, the other tap 1, so output positions get 4, 2 or 1 contributions: ratio
    4 (2/1 per axis). Fixtures `decoder_k4s2` (kernel 4, stride 2: 2 and 2 per axis) and
    `decoder_k2s2` (kernel 2, stride 2: 1 and 1) pass.

    ## Fix
    Use a kernel divisible by the stride (4x4 with stride 2, 2x2 with stride 2), or upsample
    by resizing (nearest or bilinear) followed by a stride-1 conv, as Odena et al. recommend.

    """

    code, name, severity = "AL701", "checkerboard-transposed-conv", Severity.WARNING
    analyses = ("phase_coverages",)
    fingerprint_keys = ("kernel", "stride")
    options = (Option("max-ratio", float, default=1.0,
                      help="Largest ratio of contributions between the most and the least covered output "
                           "position of a transposed conv; 1.0 flags any unevenness (kernel not a multiple "
                           "of the stride). Positions without any contribution are always flagged."),)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-ratio"]
        for name, coverage in ctx.analysis("phase_coverages").items():
            ratio = coverage.ratio
            if ratio is not None and (not coverage.uneven or ratio <= limit):
                continue
            layer = graph.layer(name)
            phases = " x ".join("/".join(map(str, c)) for c in coverage.counts)
            if ratio is None:
                verdict = (f"some output positions get no contribution at all (kernel {format_dims(layer.kernel)} "
                           f"smaller than stride {format_dims(layer.stride)})")
            else:
                verdict = (f"the most covered output position gets {coverage.most}, the least {coverage.least} "
                           f"(ratio {format_number(ratio)} > {format_number(limit)})")
            yield ctx.finding(
                name,
                f"transposed conv '{name}' (kernel {format_dims(layer.kernel)}, stride {format_dims(layer.stride)}) "
                f"gives its output phases {phases} contributions per axis: {verdict}",
                fix="use a kernel divisible by the stride (e.g. 4x4 with stride 2), or resize then a stride-1 conv",
                data={"phase_counts": [list(c) for c in coverage.counts], "most": coverage.most,
                      "least": coverage.least, "ratio": None if ratio is None else float(ratio),
                      "ratio_per_axis": [None if r is None else float(r) for r in coverage.axis_ratios],
                      "limit": limit, "kernel": list(layer.kernel), "stride": list(layer.stride),
                      "dilation": list(layer.dilation)})


class GriddingDilatedChain(Rule):
    """Stacked dilated convolutions whose output reads only a lattice of their input map.

    ## What it flags
    A run of at least `min-dilated` stride-1 windows with a dilation above 1 (with
    position-wise layers, 1x1 convs and residual merges in between) whose rates share a factor
    `g > 1` (2, 2, 2; 2, 4, 4), so that one output of the run reads, on the run's input map,
    only the positions of a `g x g` lattice within its span, and neighbouring outputs read
    disjoint sets. A later undilated window (or a merge) whose footprint covers the span
    fills the holes and clears the run, as the rate-1 conv of Wang et al.'s hybrid dilated
    convolution does, or an undilated branch summed in (the 3x3 path of a selective-kernel
    block, beside its dilated one); global pooling reads everything. A resize does not: it blends values
    each computed from one lattice. The finding sits on the run's last dilated window and
    gives the positions read and spanned per axis, the lattice step and the exact share of
    the span never read, against `max-unread`. Rates without a common factor that
    still leave holes (2, 9 misses some offsets but no lattice) are not flagged.
    ## Why it matters
    Each output sees a sparse, regular sample of its neighbourhood: local detail between the
    sampled positions never reaches it, and adjacent outputs are computed from unrelated
    inputs, which shows as a grid pattern in dense predictions (Wang et al., "Understanding
    Convolution for Semantic Segmentation", WACV 2018, the "gridding" problem).

    ## Example
    Fixture `dilated_chain_222` (three 3x3 convs with dilation 2 on 32x32) gives one finding at
    `body.4`: per axis the output reads offsets -6, -4, ..., 6, i.e. 7 of 13 positions on a
    step-2 lattice, 49 of 169 in 2-D, 120/169 = 71.0% never read. Fixture `dilated_chain_125`
    (rates 1, 2, 5, the hybrid dilated convolution: no common factor) passes. Fixture
    `dilated_chain_222_closed` (the 2, 2, 2 run followed by an undilated 3x3 conv, which
    reads all 15 offsets per axis) passes too.
    Torchvision's DeepLabV3 and FCN pass, although their ResNet backbones stack 3x3 convs with
    dilation 2 and 4 (the backbone alone reads 21 of 41 offsets per axis, 73.8% never read):
    their heads start with an undilated 3x3 conv that reads all four lattices. LR-ASPP
    (MobileNetV3) gives one finding: its high-resolution branch is upsampled straight after
    three 5x5 depthwise convs with dilation 2.

    ## Fix
    Choose rates without a common factor that leave no holes, e.g. 1, 2, 5 or 1, 2, 3 (hybrid
    dilated convolution, Wang et al.), or follow the run with an undilated 3x3 conv before
    the map is upsampled or output.

    """

    code, name, severity = "AL702", "gridding-dilated-chain", Severity.WARNING
    analyses = ("gridded_chains",)
    fingerprint_keys = ("rates",)
    options = (Option("max-unread", float, default=0.0,
                      help="Largest share of the positions within one output's span, on the input map of a "
                           "run of dilated windows, that the output may leave unread. 0 flags any hole."),
               Option("min-dilated", int, default=2,
                      help="Dilated windows a run needs before it is checked; one dilated conv alone "
                           "samples sparsely by design (atrous pyramid branches)."))

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit, min_windows = ctx.options["max-unread"], ctx.options["min-dilated"]
        for chain in ctx.analysis("gridded_chains"):
            share = chain.unread_fraction
            if chain.dilated < min_windows or not any(s > 1 for s in chain.step) or share <= limit:
                continue
            last = next(w for w, r in zip(reversed(chain.windows), reversed(chain.rates)) if any(d > 1 for d in r))
            rates = ", ".join(format_dims(r) for r in chain.rates)
            lattice = f"; they lie on a {format_dims(chain.step)} lattice, so neighbouring outputs read disjoint sets"
            yield ctx.finding(
                last,
                f"{len(chain.windows)} stride-1 windows from '{chain.windows[0]}' to '{chain.windows[-1]}' "
                f"(dilation {rates}) read {format_dims(chain.read)} of the {format_dims(chain.span)} positions one "
                f"output spans on the map of '{chain.start}': {share.numerator}/{share.denominator} = {float(share):.1%} never read "
                f"(limit {limit:.0%}){lattice}",
                fix="use rates without a common factor that leave no holes (e.g. 1, 2, 5), or add an undilated "
                    "3x3 conv after the run",
                data={"start": chain.start, "windows": list(chain.windows), "rates": [list(r) for r in chain.rates],
                      "read": list(chain.read), "span": list(chain.span), "step": list(chain.step),
                      "unread_fraction": share, "limit": limit, "dilated_windows": chain.dilated})


class MisalignedMerge(Rule):
    """Add or concat whose branches' receptive fields are centred on different input pixels.

    ## What it flags
    Each add or concat where two branches' receptive fields, at the same output position,
    are centred apart by at least `min-shift` input pixels and by at least
    `min-shift-positions` times the merged map's effective stride `J` (the spacing of its
    positions, in input pixels) along some axis. The centre of output `x` is
    `x*J - P + (R - 1)/2` for a field of size `R` and effective padding `P`; after a nearest
    upsampling it is the centre of the span its rounding can read (the mean over the
    copied positions). The finding gives the shift per axis in input pixels and in
    positions of the merged map, and the two branches.

    ## Why it matters
    The merge combines, position by position, features of different places. Typical causes:
    one branch downsampled with an even window (2x2 pooling, a 2x2 or 4x4 strided conv) or
    asymmetric padding and the other with an odd, centred one; a nearest upsampling that
    copies coarse position `s` onto fine positions `f*s .. f*s + f - 1` after odd, centred
    downsampling windows, shifting a decoder or FPN branch by `(f - 1)/2` fine positions
    against its skip connection. The convolutions after the merge can compensate only
    within their kernels; predicted masks and boxes drift. Shifts below one position of the
    merged map stay within its sampling cell and are not flagged by default: ResNet-D's 2x2
    average-pool shortcut is a quarter position off, NASNet's factorized reduction half a
    position by design (its second path reads the odd pixels the first one skips).

    ## Example
    Fixture `nearest_skip` (four 3x3 stride-2 convs, padding 1, then a 16x nearest
    upsampling, added to a stride-1 3x3 conv, on 32x32) gives one finding at `Add`: the
    coarse path is centred on `16*s`, nearest copies it onto `16*s .. 16*s + 15`, so the
    upsampled branch is centred 7.5 input px before the fine one on each axis (7.5 positions
    of the merged map). Fixture `patch_nearest_skip` (the same with 2x2 stride-2 convs,
    centred on `16*s + 7.5`) passes. Fixture `shifted_skip` (a 3x3 stride-2 conv added to a
    2x2 stride-2 average pool) passes: its branches are 0.5 px, a quarter position, apart.
    Torchvision's classification networks give no finding (every merge is centred). Its
    detection FPNs (nearest upsampling by 2 at each level) give 12 px at P3 and 14 px at P2,
    1.5 and 3.5 positions of those maps; P4's 8 px is half a position. Among timm's
    classification networks, HRNet's fuse layers (nearest upsampling by 2, 4 and 8 after
    centred stride-2 convs) give up to 2 positions.

    ## Fix
    Make the branches agree: downsample both with centred (odd, symmetrically padded)
    windows or both with even ones, and upsample with the convention matching the
    downsampling (nearest copies onto the block an even window read; after odd windows,
    interpolate with `align_corners=True` or crop/pad by the shift).

    """

    code, name, severity = "AL703", "misaligned-merge", Severity.INFO
    analyses = ("merge_shifts",)
    fingerprint_keys = ("branches",)
    options = (Option("min-shift", float, default=1.0,
                      help="Smallest difference, in input pixels, between the field centres of two merged "
                           "branches that is flagged."),
               Option("min-shift-positions", float, default=1.0,
                      help="Smallest difference between the field centres of two merged branches that is "
                           "flagged, in positions of the merged map (its effective stride in input pixels). "
                           "1.0: the branches are off by at least one whole position of the map they are "
                           "merged on."))

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit, cells = Fraction(ctx.options["min-shift"]), Fraction(ctx.options["min-shift-positions"])
        for name, merge in ctx.analysis("merge_shifts").items():
            relative = merge.shift_in_strides
            if not any(s > 0 and s >= limit and r >= cells for s, r in zip(merge.shift, relative)):
                continue
            verb = "adds" if graph.layer(name).op.value == "add" else "concatenates"
            a, b = merge.branches
            yield ctx.finding(
                name,
                f"'{name}' {verb} branches '{a}' and '{b}' whose receptive fields are centred "
                f"{format_dims(merge.shift)} input px apart, {format_dims(relative)} positions of the merged map "
                f"(stride {format_dims(merge.stride)}) "
                f"(limits {format_number(limit)} px and {format_number(cells)} positions)",
                fix="downsample both branches alike (centred odd windows, or even windows with nearest upsampling), "
                    "or crop/pad the shifted branch",
                data={"shift": list(merge.shift), "shift_in_strides": list(relative), "stride": list(merge.stride),
                      "limit": float(limit), "limit_in_strides": float(cells), "branches": list(merge.branches),
                      "centres": [list(c) for c in merge.centres]})


def get_rules() -> list[type[Rule]]:
    return [CheckerboardTransposedConv, GriddingDilatedChain, MisalignedMerge]
