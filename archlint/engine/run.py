"""One lint run: model -> graph -> analyses -> rules -> suppressions -> Report."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import networkx as nx

from .. import __version__
from ..analyses import ANALYSES, Analysis
from ..analyses.macs import total_params
from ..analyses.shapes import check_shapes
from ..errors import ArchlintError, RuleError, one_line
from ..frontends import load_graph
from ..gc_pause import gc_paused
from ..graph import Graph, Op
from ..records import frozen_record
from ..report import FieldSummary, Finding, LayerRow, Report, Summary
from ..rule import Rule, RuleContext
from .config import Config
from .options import rule_options
from .registry import discover_rules
from .selection import selected_rules
from .suppress import Suppressions

__all__ = ["lint", "lint_graph", "AnalysisCache"]


class AnalysisCache:
    """Runs analyses by name on one graph, each at most once (``cache("receptive_fields")``).

    Built-in analyses are known by name; rules bring others as ``Analysis`` objects, which
    :meth:`register` adds (two different analyses under one name are an error).
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.results: dict[str, Any] = {}
        self.extra: dict[str, Analysis] = {}

    def register(self, rule: type[Rule]) -> None:
        """Make the ``Analysis`` objects ``rule`` declares available by name."""
        for analysis in rule.analyses:
            if not isinstance(analysis, Analysis):
                continue
            known = self.extra.get(analysis.name)
            if analysis.name in ANALYSES or (known is not None and known != analysis):
                raise RuleError(f"rule {rule.code}: analysis {analysis.name!r} is already defined by another "
                                "rule or by archlint; give it another name")
            self.extra[analysis.name] = analysis

    def __call__(self, name: str) -> Any:
        if name not in self.results:
            if name in ANALYSES:
                self.results[name] = ANALYSES[name](self.graph, self)
            elif name in self.extra:
                self.results[name] = self.extra[name].compute(self.graph, self)
            else:
                raise KeyError(f"unknown analysis {name!r} (known: {', '.join([*ANALYSES, *self.extra])})")
        return self.results[name]


def _run_rules(graph: Graph, rules: Sequence[type[Rule]], options: dict[str, dict[str, Any]],
               analyses: AnalysisCache) -> list[Finding]:
    findings: list[Finding] = []
    for rule in rules:
        analyses.register(rule)
        ctx = RuleContext(rule, options[rule.code], graph, analyses)
        try:
            findings.extend(rule().check(graph, ctx))
        except ArchlintError:
            raise
        except Exception as exc:
            raise RuleError(f"{graph.model}: rule {rule.code} ({rule.name}) crashed: "
                            f"{one_line(exc, named=True)}") from None
    return findings


#: ``op.value`` of every op (the enum's ``value`` is a Python-level property, read once per row otherwise).
_OP_NAMES = {op: op.value for op in Op}


def _rows(graph: Graph, analyses: AnalysisCache) -> list[LayerRow]:
    costs, fields = analyses("costs"), analyses("receptive_fields")
    rows = []
    for layer in graph.layers():
        name = layer.name
        cost, field = costs[name], fields[name]
        if field is None:
            size = stride = padding = None
            is_global = global_context = False
        else:
            size, stride, padding = field.size, field.stride, field.padding
            is_global, global_context = bool(field.is_global), bool(field.global_context)
        rows.append(frozen_record(LayerRow, {
            "name": name, "op": _OP_NAMES[layer.op], "source_op": layer.source_op,
            "output_shape": layer.output_shape, "macs": cost.macs, "params": cost.params,
            "other_ops": cost.other_ops, "other_category": cost.category,
            "receptive_field": size, "effective_stride": stride, "effective_padding": padding,
            "rf_global": is_global, "global_context": global_context,
            "kernel": layer.kernel, "stride": layer.stride, "groups": layer.groups,
            "source": layer.source, "defined_at": layer.defined_at}))
    return rows


def _summary(graph: Graph, analyses: AnalysisCache, rows: list[LayerRow], findings: list[Finding],
             notes: list[str]) -> Summary:
    summary = analyses("summary_field")
    field_summary = None
    if summary is not None:
        field_summary = FieldSummary(summary.layer, summary.size, summary.stride, summary.padding,
                                     summary.input_extent, summary.covers, summary.global_context,
                                     summary.is_global)
    other: dict[str, int] = {}
    macs, layers, input_op = 0, 0, Op.INPUT.value
    for row in rows:
        macs += row.macs
        if row.op != input_op:
            layers += 1
        if row.other_ops:
            other[row.other_category] = other.get(row.other_category, 0) + row.other_ops
    return Summary(
        macs=macs, params=total_params(graph, analyses("costs")), other_ops=other,
        receptive_field=field_summary,
        inputs={n: graph.layer(n).output_shape for n in graph.graph["inputs"]},
        outputs={n: graph.layer(n).output_shape for n in graph.graph["outputs"]},
        layers=layers,
        unsupported_ops=dict(graph.graph["unsupported_ops"]), notes=tuple(notes),
        macs_saved=sum(int(f.data.get("macs_saved", 0)) for f in findings))


@gc_paused
def lint_graph(graph: Graph, config: Config = Config(), rules: Sequence[type[Rule]] | None = None) -> Report:
    """Check an already built graph; ``rules`` defaults to every discovered rule."""
    available = discover_rules(config.rules_paths) if rules is None else list(rules)
    enabled = selected_rules(available, config.select, config.ignore)
    options, option_notes = rule_options(available, dict(config.options), config.reference)
    nx.freeze(graph)  # analyses cache per graph; a frozen graph cannot go stale under them
    unknown_shapes = check_shapes(graph)
    analyses = AnalysisCache(graph)
    suppressions = Suppressions.build(graph, config.per_node_ignores, available)
    raw = _run_rules(graph, enabled, options, analyses)
    findings = suppressions.unsuppressed(raw)
    findings.sort(key=attrgetter("code", "layer"))
    notes = list(graph.graph.get("notes", [])) + option_notes + suppressions.unused(enabled)
    field_loss = analyses("lost_receptive_field")
    if field_loss is not None:
        notes.append(field_loss.describe())
    if unknown_shapes:
        notes.append(f"output shape unknown for {len(unknown_shapes)} layer(s) from '{unknown_shapes[0]}' on "
                     "(data-dependent sizes); their other_ops are not counted")
    not_understood = sum(graph.graph["unsupported_ops"].values())
    if not_understood:
        notes.append(f"MACs and other ops are partial totals: {not_understood} op(s) archlint does not understand "
                     "(listed) count nothing")
    rows = _rows(graph, analyses)
    return Report(model=graph.model, format=graph.graph.get("format", ""),
                  summary=_summary(graph, analyses, rows, findings, notes),
                  layers=tuple(rows), findings=tuple(findings), tool_version=__version__,
                  rules=tuple(rule.describe() for rule in enabled))


def lint(model: Any, config: Config | None = None, *, example_inputs: Any = None,
         unsafe_load_pickle: bool = False, **overrides: Any) -> Report:
    """Lint ``model`` and return its :class:`Report`.

    Parameters
    ----------
    model : str, PathLike, onnx.ModelProto, torch.nn.Module or torch.export.ExportedProgram
        The model to check: an ``.onnx``, ``.pt2`` or TorchScript file, a ``pkg.module:factory``
        reference, or an in-memory model (see :func:`archlint.frontends.load_graph`).
    config : Config, optional
        Settings; defaults to none (all rules, default options).
    example_inputs : Tensor or tuple of Tensor, optional
        PyTorch models: inputs whose shapes are traced (``input_shapes`` works too).
    unsafe_load_pickle : bool
        Allow ``torch.save(model)`` pickles, which run code from the file when loaded.
    **overrides
        Config fields to override: ``select``, ``ignore``, ``fail_on``, ``input_shapes``,
        ``options`` (rule options by qualified name, ``{"CODE.option-name": value}``; see
        :mod:`archlint.engine.options`), ``per_node_ignores``,
        ``rules_paths``, ``reference`` (the summary of a report to compare against).

    Raises
    ------
    ArchlintError
        Unreadable model, bad configuration, or a crashed rule; ``str(error)`` is one line.
    """
    config = (config or Config()).override(**overrides)
    graph = load_graph(model, config.input_shapes, example_inputs=example_inputs,
                       unsafe_load_pickle=unsafe_load_pickle)
    try:
        return lint_graph(graph, config)
    finally:
        graph.drop_views()  # the graph is ours alone: freed now, not by a later full collection
