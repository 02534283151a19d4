"""Rules about depth and skip connections (AL1xx)."""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import Finding, Graph, Op, Option, Rule, RuleContext, Severity


class DeepChainWithoutSkip(Rule):
    """Long chain of weighted layers in series with no shorter route around it.

    ## What it flags
    The last layer of every plain chain longer than `max-plain-depth`, or holding more
    than `max-plain-recurrent` recurrent layers: weighted layers (conv, transposed conv,
    linear, recurrent) that follow each other in series, such that
    everywhere between the chain's first and last layer the routes through the graph have
    the same number of weighted layers. Identity shortcuts, dense concatenation, parallel
    branches of unequal depth (Inception blocks, squeeze-excitation branches) and extra
    outputs give routes of different depth and end a chain; parallel branches of equal
    depth do not. Layers without weights (activations, norms, pooling, reshapes) neither
    count nor end a chain. A recurrent layer (LSTM, GRU, RNN) counts once: its depth is
    across stacked layers, not through time, and a stacked `nn.LSTM(num_layers=8)` is eight
    layers in series. The finding names the chain's first and last layer, its depth and
    how many of its layers are recurrent.

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
    Stacked recurrent layers degrade sooner: Wu et al. (GNMT, 2016) found that "simple
    stacked LSTM layers work well up to 4 layers, barely with 6 layers, and very poorly
    beyond 8 layers", and added residual connections between them; hence the separate
    limit of 4 recurrent layers, which the usual 1- to 3-layer recurrent heads
    (CRNN text recognizers, voice activity detectors, ELMo) pass.

    ## Example
    Fixture `plain_chain_30` (thirty 3x3 convs `convs.0` ... `convs.29` in a row) gives
    one finding at `convs.29`: depth 30 from `convs.0` (30/11). Torchvision VGG-16 gives
    one at `classifier.6`: 13 convs plus 3 linear layers, depth 16 from `features.0` (16/11).
    Fixture `stacked_lstm_8` (an 8-layer `nn.LSTM` `rnn`, then a linear `fc`) gives one at
    `fc`: 9 weighted layers from `rnn`, 8 of them recurrent (8/4); `stacked_lstm_2` and
    `residual_lstm_8` (eight LSTMs with identity shortcuts between them) pass.

    ## Fix
    Add identity shortcuts every two or three layers (a 1x1 projection where the channel
    count or the stride changes), as in ResNet; or concatenate earlier features (DenseNet);
    or split the network into shallower stages with auxiliary heads. Normalization alone
    eases but does not remove the problem (He et al. train their plain nets with BN).
    Stacked recurrent layers take shortcuts the same way: split an `nn.LSTM(num_layers=N)`
    into single-layer modules and add each one's input to its output, as GNMT does.
    """

    code, name, severity = "AL101", "deep-chain-without-skip", Severity.WARNING
    options = (Option("max-plain-depth", int, default=11,
                      help="Longest chain of weighted layers in series without a shorter route around it. "
                           "11 = VGG-11, the deepest VGG its authors trained from scratch; deeper plain "
                           "nets train worse (He et al. 2016)."),
               Option("max-plain-recurrent", int, default=4,
                      help="Most recurrent layers (LSTM, GRU, RNN) in one such chain. 4 = where stacked "
                           "LSTMs still train well without residual connections (Wu et al. 2016, GNMT)."))
    analyses = ("plain_chains",)
    fingerprint_keys = ("first",)  # the chain's start; its depth may grow

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit, recurrent_limit = ctx.options["max-plain-depth"], ctx.options["max-plain-recurrent"]
        recurrent_op = Op.RECURRENT
        for chain in ctx.analysis("plain_chains"):
            if chain.depth <= min(limit, recurrent_limit):
                break  # longest first, and a chain holds at most its depth in recurrent layers
            recurrent = sum(1 for name in chain.layers if graph.layer(name).op is recurrent_op)
            if recurrent > recurrent_limit:
                what = f"{chain.depth} weighted layers ({recurrent} of them recurrent)"
                ratio = f"{recurrent}/{recurrent_limit} recurrent"
                fix = ("split the stacked recurrent layers into single-layer modules and add each one's input "
                       "to its output (residual connections between them)")
            elif chain.depth > limit:
                what, ratio = f"{chain.depth} weighted layers", f"{chain.depth}/{limit}"
                fix = ("add identity shortcuts around every two or three of these layers "
                       "(1x1 projection where shapes change), or concatenate earlier features")
            else:
                continue
            yield ctx.finding(
                chain.last,
                f"{what} in series from '{chain.first}' to '{chain.last}' with no shorter route around "
                f"them ({ratio})",
                fix=fix,
                data={"depth": chain.depth, "limit": limit, "recurrent": recurrent,
                      "recurrent_limit": recurrent_limit, "first": chain.first, "last": chain.last,
                      "layers": list(chain.layers)})


def get_rules() -> list[type[Rule]]:
    return [DeepChainWithoutSkip]
