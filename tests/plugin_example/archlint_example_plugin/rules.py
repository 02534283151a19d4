"""Example plugin rules (XP1xx): written against ``archlint.api`` only, like any third-party rule."""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import Finding, Graph, Op, Option, Rule, RuleContext, Severity


class WideConv(Rule):
    """Convolution with more output channels than a fixed budget.

    ## What it flags
    A convolution with more than `max-conv-channels` output channels.

    ## Why it matters
    An example of a house rule a team might add: the deployment target has a channel budget.

    ## Example
    Fixture `flatten_head_8x8` has one conv with 8 output channels: one finding with
    `max-conv-channels` set to 4.

    ## Fix
    Use fewer channels.
    """

    code, name, severity = "XP101", "wide-conv", Severity.ERROR
    options = (Option("max-conv-channels", int, default=4, help="Most output channels a conv may have."),)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-conv-channels"]
        for layer in graph.layers():
            if layer.op is Op.CONV and layer.out_channels > limit:
                yield ctx.finding(layer.name, f"conv '{layer.name}' has {layer.out_channels} output channels "
                                              f"({layer.out_channels}/{limit})",
                                  data={"channels": layer.out_channels, "limit": limit})


def get_rules() -> list[type[Rule]]:
    return [WideConv]
