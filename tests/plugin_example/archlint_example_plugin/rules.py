"""Example plugin rules (XP1xx): written against ``archlint.api`` only, like any third-party rule.

XP101 is a per-layer rule with an option and fingerprint keys; XP102 is a budget built on
``ModelBudget``, with a command-line flag, an option read from the reference report and an
analysis of its own that the engine caches like the built-in ones.
"""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import (Analysis, Count, Finding, Graph, ModelBudget, Op, Option, Rule, RuleContext, Severity,
                          model_anchor)

#: Layers of the model, graph inputs excluded (the report's ``summary.layers``).
LAYER_COUNT = Analysis("example_layer_count", lambda graph, get: sum(1 for layer in graph.layers()
                                                                     if layer.op is not Op.INPUT))


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
    fingerprint_keys = ("channels",)  # which conv it is; the limit is an option

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["max-conv-channels"]
        for layer in graph.layers():
            if layer.op is Op.CONV and layer.out_channels > limit:
                yield ctx.finding(layer.name, f"conv '{layer.name}' has {layer.out_channels} output channels "
                                              f"({layer.out_channels}/{limit})",
                                  data={"channels": layer.out_channels, "limit": limit})


class LayersAdded(ModelBudget):
    """Model has more layers than the reference plus an allowance.

    ## What it flags
    A model with more than `max-layers-added` layers beyond the reference model's
    (`archlint diff` BASE or the `--baseline` report). Off unless both are known.

    ## Why it matters
    An example of a relative budget a plugin can declare: the reference comes from the
    reference report, the limit from a command-line flag.

    ## Example
    Fixture `flatten_head_8x8` against a reference of 2 layers, with `max-layers-added` 0,
    gives one finding.

    ## Fix
    Remove layers, or raise the allowance.
    """

    code, name, limit_option = "XP102", "layers-added", "max-layers-added"
    options = (Option("max-layers-added", Count, default=None, flag=True,
                      help="Most layers a model may have beyond the reference's."),
               Option("baseline-layers", Count, default=None, reference="layers",
                      help="Layers of the reference model."))
    analyses = (LAYER_COUNT,)

    def allowed(self, limit: Count, ctx: RuleContext) -> int | None:
        base = ctx.options["baseline-layers"]
        return None if base is None else base + limit

    def measure(self, graph: Graph, ctx: RuleContext) -> int:
        return ctx.analysis("example_layer_count")

    def over_budget(self, graph: Graph, ctx: RuleContext, layers: int, limit: Count) -> Finding:
        base = ctx.options["baseline-layers"]
        return ctx.finding(model_anchor(graph), f"{layers} layers, {layers - base} more than the reference's "
                                                f"{base} (allowed {limit})",
                           data={"layers": layers, "baseline_layers": int(base), "limit": int(limit)})


def get_rules() -> list[type[Rule]]:
    return [WideConv, LayersAdded]
