"""The public surface for users and rule authors: ``lint`` plus everything a rule may use.

Rules (built-in and plugins) import from here only: the graph and its vocabulary, the
Rule/Option/RuleContext/Finding/Severity types, and the analysis results they query.
"""

from __future__ import annotations

from .analyses import Analysis
from .analyses.alignment import MergeShift, field_centre, merge_shifts
from .analyses.border import (BorderLoss, BorderLossTotal, border_loss, border_loss_ends, border_losses,
                              cumulative_border_losses, same_padding)
from .analyses.macs import ActivationPeak, Cost, layer_macs, peak_activation, total_params
from .analyses.paths import PlainChain, plain_chains, weighted_depths
from .analyses.receptive_field import AxisField, ReceptiveField, input_extent, summary_receptive_field
from .analyses.gridding import DilatedChain, dilated_chains, gridded_chain_ends
from .analyses.stride_growth import StrideStep, stride_steps
from .analyses.window_coverage import (AxisCoverage, WindowCoverage, axis_coverage, covered_windows, unread_windows,
                                       window_coverage)
from .analyses.separable import SeparableCost, separable_cost
from .analyses.shapes import spatial_dims, window_output_size
from .analyses.spatial_loss import FlattenedDense, InputCoverage, flattened_dense_heads, input_coverage
from .analyses.upsampling import PhaseCoverage, phase_coverage, phase_coverages
from .budgets import Count, ModelBudget, Ratio, model_anchor
from .analyses.model_field import SummaryField, summary_field
from .engine.config import Config
from .engine.run import lint, lint_graph
from .formatting import format_dims, format_number, si_count
from .graph import POOL_OPS, SPATIAL_OPS, WEIGHTED_OPS, Graph, Layer, Op, Source
from .report import Finding, Report, Severity
from .rule import Option, Rule, RuleContext

__all__ = [
    "lint", "lint_graph", "Config", "Report", "Finding", "Severity", "Rule", "Option", "RuleContext", "Analysis",
    "Graph", "Layer", "Op", "Source", "WEIGHTED_OPS", "POOL_OPS", "SPATIAL_OPS",
    "Cost", "layer_macs", "ReceptiveField", "AxisField", "spatial_dims", "window_output_size",
    "BorderLoss", "BorderLossTotal", "border_loss", "border_losses", "cumulative_border_losses",
    "border_loss_ends", "same_padding", "SeparableCost", "separable_cost",
    "PlainChain", "plain_chains", "weighted_depths", "AxisCoverage", "WindowCoverage", "axis_coverage",
    "window_coverage", "covered_windows", "unread_windows", "StrideStep", "stride_steps",
    "FlattenedDense", "flattened_dense_heads", "InputCoverage", "input_coverage",
    "ActivationPeak", "peak_activation", "total_params", "summary_receptive_field", "input_extent",
    "Count", "Ratio", "ModelBudget", "model_anchor", "si_count",
    "DilatedChain", "dilated_chains", "gridded_chain_ends", "PhaseCoverage", "phase_coverage", "phase_coverages",
    "MergeShift", "merge_shifts", "field_centre",
    "format_dims", "format_number", "SummaryField", "summary_field",
]
