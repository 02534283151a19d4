"""Budget rules (AL6xx): model-wide limits on MACs, parameters, activation memory and receptive field.

Every budget is off by default (no limit). Limits are ``Count`` (SI suffixes: ``4.5G``)
and ``Ratio`` (``5%``) options; the limit-over-measurement rules are ``ModelBudget``s, as a
plugin's would be. Model-wide findings sit on the model's first output layer.
"""

from __future__ import annotations

from collections.abc import Iterator

from archlint.api import (Count, Finding, Graph, ModelBudget, Option, Ratio, Rule, RuleContext, Severity,
                          format_dims, model_anchor, si_count, total_params)

__all__ = ["MaxMacs", "MaxParams", "MaxPeakActivation", "MinReceptiveField",
           "MaxMacsIncrease", "get_rules"]

class MaxMacs(ModelBudget):
    """Model needs more multiply-accumulates than its budget.

    ## What it flags
    A model whose headline MACs (conv and matrix-product multiply-accumulates, batch
    included: the report's `summary.macs`) exceed `max-macs`. Off unless `max-macs` is set.
    ## Why it matters
    Latency and energy on the target device grow with the MAC count; a budget in CI catches
    the pull request that makes the model too slow before it ships.
    ## Example
    Fixture `budget_net` (1x3x32x32 input: 3x3 conv 3->16 at 32x32, 3x3 conv 16->32 stride 2
    at 16x16, linear 32->10) needs 442,368 + 1,179,648 + 320 = 1,622,336 MACs; with
    `AL601.max-macs = "1.5M"` it gives one finding (1,622,336 > 1,500,000).
    ## Fix
    Shrink the costliest layers (see `archlint --layers`): fewer channels, depthwise-separable
    convs, earlier downsampling; or raise the budget knowingly.
    """

    code, name, limit_option = "AL601", "max-macs-exceeded", "max-macs"
    options = (Option("max-macs", Count, default=None,
                      help="Largest headline MAC count allowed (e.g. 4.5G).", flag=True),)
    analyses = ("costs",)

    def measure(self, graph: Graph, ctx: RuleContext) -> int:
        return sum(c.macs for c in ctx.analysis("costs").values())

    def over_budget(self, graph: Graph, ctx: RuleContext, macs: int, limit: Count) -> Finding:
        return ctx.finding(model_anchor(graph), f"model needs {si_count(macs)} MACs, over the budget of "
                           f"{si_count(limit)} ({macs:,}/{limit:,})",
                           fix="reduce the costliest layers or raise max-macs",
                           data={"macs": macs, "limit": int(limit), "excess": macs - int(limit)})


class MaxParams(ModelBudget):
    """Model has more parameters than its budget.

    ## What it flags
    A model whose parameter count (the report's `summary.params`: each shared PyTorch
    parameter once, ONNX initializers per use, with the biases of BatchNorm folded into convs
    as the file stores them) exceeds `max-params`.
    Off unless `max-params` is set.
    ## Why it matters
    Parameters set the download size and the memory for weights on the device.
    ## Example
    Fixture `budget_net` holds 448 + 4,640 + 330 = 5,418 parameters (conv 3->16 3x3 with
    bias, conv 16->32 3x3 with bias, linear 32->10 with bias); with `AL602.max-params = "5k"` it
    gives one finding.
    ## Fix
    Fewer channels, factorized or shared weights, a smaller classifier head; or raise the budget.
    """

    code, name, limit_option = "AL602", "max-params-exceeded", "max-params"
    options = (Option("max-params", Count, default=None,
                      help="Largest parameter count allowed (e.g. 30M).", flag=True),)
    analyses = ("costs",)

    def measure(self, graph: Graph, ctx: RuleContext) -> int:
        return total_params(graph, ctx.analysis("costs"))

    def over_budget(self, graph: Graph, ctx: RuleContext, params: int, limit: Count) -> Finding:
        return ctx.finding(model_anchor(graph), f"model has {si_count(params)} parameters, over the budget of "
                           f"{si_count(limit)} ({params:,}/{limit:,})", fix="reduce channels or raise max-params",
                           data={"params": params, "limit": int(limit), "excess": params - int(limit)})


class MaxPeakActivation(ModelBudget):
    """Peak activation memory exceeds its budget.

    ## What it flags
    A model whose peak activation size exceeds `max-peak-activation` elements. The peak is
    the largest sum of live activation tensors while running the layers one at a time in
    the graph's topological order: when a layer computes its output, that output, every
    earlier output that a later layer still reads (graph inputs included) and every graph
    output already produced are live. Sizes are element counts, batch included (multiply by
    the bytes per element, e.g. 4 for float32); reshapes count as tensors of their own. The
    finding also names the largest single tensor. Off unless `max-peak-activation` is set.
    ## Why it matters
    Inference memory on a device is the weights plus this peak; it limits the input size
    and batch that fit.
    ## Example
    Fixture `budget_net` peaks while its first ReLU runs: the conv's output and the ReLU's
    (16x32x32 = 16,384 elements each) are live, 32,768 elements; with
    `AL603.max-peak-activation = "30k"` it gives one finding.
    ## Fix
    Downsample earlier, use fewer channels at high resolution, or avoid long-lived skip
    tensors at full resolution.
    """

    code, name, limit_option = "AL603", "max-peak-activation-exceeded", "max-peak-activation"
    options = (Option("max-peak-activation", Count, default=None,
                      help="Largest sum of live activation elements allowed (e.g. 2M).",
                      flag=True),)
    analyses = ("peak_activation",)

    def measure(self, graph: Graph, ctx: RuleContext) -> int:
        return ctx.analysis("peak_activation").elements

    def over_budget(self, graph: Graph, ctx: RuleContext, elements: int, limit: Count) -> Finding:
        peak = ctx.analysis("peak_activation")
        return ctx.finding(
            model_anchor(graph), f"peak activation {si_count(elements)} elements while computing "
            f"'{peak.layer}', over the budget of {si_count(limit)} ({elements:,}/{limit:,}); largest "
            f"single tensor {si_count(peak.largest)} at '{peak.largest_layer}'",
            fix="downsample earlier or use fewer channels at high resolution",
            data={"peak": elements, "peak_layer": peak.layer, "largest": peak.largest,
                  "largest_layer": peak.largest_layer, "limit": int(limit)})


class MinReceptiveField(Rule):
    """Summary receptive field smaller than the required share of the input.

    ## What it flags
    A model whose summary receptive field (the field of the last feature map with spatial
    extent, as in the report) spans less than `min-receptive-field` of the input along some
    axis. Unlike AL503 it applies to every model, dense prediction included, and is off
    unless `min-receptive-field` is set.
    ## Why it matters
    Outputs cannot depend on anything farther away than the field: a segmentation or
    detection model needs a field matching the largest object it must recognize.
    ## Example
    Fixture `budget_net`: the summary field is that of the second conv, 3 + 2 = 5 pixels
    (3x3 then 3x3 stride 2), 5/32 = 15.6% of the 32x32 input; with
    `AL604.min-receptive-field = "50%"` it gives one finding.
    ## Fix
    Add stages, downsample earlier or use dilated convolutions.
    """

    code, name, severity = "AL604", "min-receptive-field-not-met", Severity.ERROR
    options = (Option("min-receptive-field", Ratio, default=None,
                      help="Smallest summary receptive field, as a share of the input per axis (e.g. 50%).",
                      flag=True),)
    analyses = ("summary_field",)

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options["min-receptive-field"]
        if limit is None:
            return
        summary = ctx.analysis("summary_field")
        if summary is None or not summary.coverage:
            return
        share = float(summary.min_coverage)
        if share < limit:
            last = summary.layer
            yield ctx.finding(
                last, f"summary receptive field {format_dims(summary.size)} at '{last}' spans {100 * share:.1f}% of "
                f"the {format_dims(summary.input_extent)} input (budget {100 * limit:.0f}%)",
                fix="add stages, downsample earlier or dilate convolutions",
                data={"receptive_field": [float(s) for s in summary.size], "input": list(summary.input_extent),
                      "share": share, "limit": float(limit)})


class MaxMacsIncrease(ModelBudget):
    """Model's MACs grew more than allowed over the baseline.

    ## What it flags
    A model whose headline MACs exceed those of the reference by more than
    `max-macs-increase` (a share: `5%`). The reference is `baseline-macs`, which
    `archlint diff BASE HEAD` sets to BASE's MACs and `--baseline REPORT.json` to the MACs
    that report recorded; it can also be set by hand. Off unless both are known.
    ## Why it matters
    A budget relative to the current model catches creeping cost in every pull request,
    without fixing an absolute number that goes stale.
    ## Example
    Fixture `budget_net` needs 1,622,336 MACs; with `AL605.baseline-macs = 1500000` and
    `AL605.max-macs-increase = "5%"` it gives one finding (+8.2% > 5%).
    ## Fix
    Recover the cost elsewhere, or accept it by raising the limit or refreshing the baseline.
    """

    code, name, limit_option = "AL605", "max-macs-increase-exceeded", "max-macs-increase"
    options = (Option("max-macs-increase", Ratio, default=None,
                      help="Largest MAC growth over baseline-macs allowed (e.g. 5%).", flag=True),
               Option("baseline-macs", Count, default=None, reference="macs",
                      help="Reference MAC count."))
    analyses = ("costs",)

    def allowed(self, limit: Ratio, ctx: RuleContext) -> float | None:
        base = ctx.options["baseline-macs"]
        return None if base is None else base * (1 + limit)

    def measure(self, graph: Graph, ctx: RuleContext) -> int:
        return sum(c.macs for c in ctx.analysis("costs").values())

    def over_budget(self, graph: Graph, ctx: RuleContext, macs: int, limit: Ratio) -> Finding:
        base = ctx.options["baseline-macs"]
        growth = (macs - base) / base if base else float("inf")
        return ctx.finding(
            model_anchor(graph), f"model needs {si_count(macs)} MACs, {100 * growth:+.1f}% over the baseline's "
            f"{si_count(base)} (allowed {100 * limit:+.1f}%)",
            fix="recover the cost elsewhere or raise max-macs-increase",
            data={"macs": macs, "baseline_macs": int(base), "increase": growth, "limit": float(limit)})


def get_rules() -> list[type[Rule]]:
    return [MaxMacs, MaxParams, MaxPeakActivation, MinReceptiveField, MaxMacsIncrease]
