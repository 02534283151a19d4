"""Analyses: functions of a Graph that compute shapes, receptive fields, costs and the queries rules share.

``ANALYSES`` names the ones the engine runs on demand, once per graph, for rules and
reports (``ctx.analysis(name)``). Each entry is called with the graph and a getter for
other analyses, so an analysis built on receptive fields reuses the engine's copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..graph import Graph
from .border import border_losses, cumulative_border_losses
from .macs import costs
from .receptive_field import receptive_fields
from .sampling import stride_steps, window_coverage

__all__ = ["ANALYSES", "window_coverages"]


def window_coverages(graph: Graph) -> dict:
    """:func:`~.sampling.window_coverage` of every layer (``None`` for layers without windows)."""
    return {layer.name: window_coverage(layer) for layer in graph.layers()}


Getter = Callable[[str], Any]

ANALYSES: dict[str, Callable[[Graph, Getter], Any]] = {
    "costs": lambda graph, get: costs(graph),
    "receptive_fields": lambda graph, get: receptive_fields(graph),
    "window_coverages": lambda graph, get: window_coverages(graph),
    "stride_steps": lambda graph, get: stride_steps(graph, get("receptive_fields")),
    "border_losses": lambda graph, get: border_losses(graph, get("receptive_fields")),
    "cumulative_border_losses": lambda graph, get: cumulative_border_losses(
        graph, get("receptive_fields"), own=get("border_losses")),
}
