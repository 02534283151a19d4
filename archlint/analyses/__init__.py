"""Analyses: functions of a Graph that compute shapes, receptive fields, costs and the queries rules share.

``ANALYSES`` names the ones the engine runs on demand, once per graph, for rules and
reports: a rule lists those it reads in its ``analyses`` and gets them with
``ctx.analysis(name)``. Each entry is called with the graph and a getter for other
analyses, so an analysis built on receptive fields reuses the engine's copy. A rule can
bring an analysis of its own as an :class:`Analysis`; the engine caches it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..graph import Graph
from .alignment import merge_shifts
from .border import border_losses, cumulative_border_losses
from .macs import costs, peak_activation
from .paths import plain_chains, weighted_depths
from .receptive_field import input_dependent, lost_receptive_field, receptive_fields, summary_receptive_field
from .gridding import dilated_chains, gridded_chain_ends
from .stride_growth import stride_steps
from .window_coverage import window_coverages
from .upsampling import phase_coverages
from .model_field import summary_field

__all__ = ["ANALYSES", "Analysis", "window_coverages"]


Getter = Callable[[str], Any]


@dataclass(frozen=True)
class Analysis:
    """A named analysis a rule brings along: ``compute(graph, get)``, where ``get(name)`` reaches other analyses.

    Examples
    --------
    >>> conv_count = Analysis("conv_count", lambda graph, get: sum(1 for l in graph.layers() if l.op.value == "conv"))
    >>> conv_count.name
    'conv_count'
    """

    name: str
    compute: Callable[[Graph, Getter], Any]

ANALYSES: dict[str, Callable[[Graph, Getter], Any]] = {
    "costs": lambda graph, get: costs(graph),
    "input_dependent": lambda graph, get: input_dependent(graph),
    "receptive_fields": lambda graph, get: receptive_fields(graph, live=get("input_dependent")),
    "window_coverages": lambda graph, get: window_coverages(graph),
    "peak_activation": lambda graph, get: peak_activation(graph),
    "plain_chains": lambda graph, get: plain_chains(graph),
    "weighted_depths": lambda graph, get: weighted_depths(graph),
    "summary_receptive_field": lambda graph, get: summary_receptive_field(
        graph, get("receptive_fields"), lost=get("lost_receptive_field")),
    "summary_field": lambda graph, get: summary_field(graph, get("receptive_fields"),
                                                      last=get("summary_receptive_field")),
    "lost_receptive_field": lambda graph, get: lost_receptive_field(graph, get("receptive_fields"),
                                                                    live=get("input_dependent")),
    "stride_steps": lambda graph, get: stride_steps(graph, get("receptive_fields")),
    "border_losses": lambda graph, get: border_losses(graph, get("receptive_fields")),
    "cumulative_border_losses": lambda graph, get: cumulative_border_losses(
        graph, get("receptive_fields"), own=get("border_losses")),
    "phase_coverages": lambda graph, get: phase_coverages(graph),
    "dilated_chains": lambda graph, get: dilated_chains(graph, get("receptive_fields")),
    "gridded_chains": lambda graph, get: gridded_chain_ends(graph, get("dilated_chains"), get("receptive_fields")),
    "merge_shifts": lambda graph, get: merge_shifts(graph, get("receptive_fields")),
}
