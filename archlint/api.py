"""The public surface for users and rule authors: ``lint`` plus everything a rule may use.

Rules (built-in and plugins) import from here only: the graph and its vocabulary, the
Rule/Option/RuleContext/Finding/Severity types, and the analysis results they query.
"""

from __future__ import annotations

from .analyses.macs import Cost, layer_macs
from .analyses.receptive_field import AxisField, ReceptiveField
from .analyses.shapes import spatial_dims, window_output_size
from .engine.config import Config
from .engine.run import lint, lint_graph
from .graph import POOL_OPS, SPATIAL_OPS, WEIGHTED_OPS, Graph, Layer, Op, Source
from .report import Finding, Report, Severity
from .rule import Option, Rule, RuleContext

__all__ = [
    "lint", "lint_graph", "Config", "Report", "Finding", "Severity", "Rule", "Option", "RuleContext",
    "Graph", "Layer", "Op", "Source", "WEIGHTED_OPS", "POOL_OPS", "SPATIAL_OPS",
    "Cost", "layer_macs", "ReceptiveField", "AxisField", "spatial_dims", "window_output_size",
]
