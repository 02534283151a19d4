"""Rules about depth and skip connections (AL1xx)."""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import Finding, Graph, Option, Rule, RuleContext, Severity


class DeepChainWithoutSkip(Rule):
    """Long chain of weighted layers in series with no shorter route around it.

    ## What it flags
    The last layer of every plain chain longer than `max-plain-depth`: weighted layers
    (conv, transposed conv, linear) that follow each other in series, such that
    everywhere between the chain's first and last layer the routes through the graph have
    the same number of weighted layers. Identity shortcuts, dense concatenation, parallel
    branches of unequal depth (Inception blocks, squeeze-excitation branches) and extra
    outputs give routes of different depth and end a chain; parallel branches of equal
    depth do not. Layers without weights (activations, norms, pooling, reshapes) neither
    count nor end a chain. The finding names the chain's first and last layer and its depth.

    ## Why it matters
    The gradient reaching the chain's first layer has crossed every other layer of the
    chain, one Jacobian each; with no shortcut, deep plain stacks train slowly or degrade:
    He et al. (CVPR 2016) show a plain 34-layer net with higher *training* error than a
    plain 18-layer one, and Simonyan & Zisserman (ICLR 2015) trained VGG's 11-layer
    configuration from scratch but initialized the 13- to 19-layer ones from it because
    "bad initialisation can stall learning". The default limit of 11 is that last depth
    known to train plainly from scratch: AlexNet (8) and VGG-11 pass, VGG-13 (13),
    VGG-16 (16) and VGG-19 (19) are flagged, and residual, dense and inverted-residual
    networks (ResNet, DenseNet, MobileNet, EfficientNet: chains of 2 to 6) stay silent.

    ## Example
    Fixture `plain_chain_30` (thirty 3x3 convs `convs.0` ... `convs.29` in a row) gives
    one finding at `convs.29`: depth 30 from `convs.0` (30/11). Torchvision VGG-16 gives
    one at `classifier.6`: 13 convs plus 3 linear layers, depth 16 from `features.0` (16/11).

    ## Fix
    Add identity shortcuts every two or three layers (a 1x1 projection where the channel
    count or the stride changes), as in ResNet; or concatenate earlier features (DenseNet);
    or split the network into shallower stages with auxiliary heads. Normalization alone
    eases but does not remove the problem (He et al. train their plain nets with BN).
    """

    code, name, severity = "AL101", "deep-chain-without-skip", Severity.WARNING
    options = (Option("max-plain-depth", int, default=11,
                      help="Longest chain of weighted layers in series without a shorter route around it. "
                           "11 = VGG-11, the deepest VGG its authors trained from scratch; deeper plain "
                           "nets train worse (He et al. 2016)."),)
    analyses = ("plain_chains",)
    fingerprint_keys = ("first",)  # the chain's start; its depth may grow

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-plain-depth"]
        for chain in ctx.analysis("plain_chains"):
            if chain.depth <= limit:
                break  # longest first
            yield ctx.finding(
                chain.last,
                f"{chain.depth} weighted layers in series from '{chain.first}' to '{chain.last}' with no "
                f"shorter route around them ({chain.depth}/{limit})",
                fix="add identity shortcuts around every two or three of these layers "
                    "(1x1 projection where shapes change), or concatenate earlier features",
                data={"depth": chain.depth, "limit": limit, "first": chain.first, "last": chain.last,
                      "layers": list(chain.layers)})


def get_rules() -> list[type[Rule]]:
    return [DeepChainWithoutSkip]
