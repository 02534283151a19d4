"""Model diff as data: what changed between a BASE and a HEAD model, layer by layer and finding by finding.

:func:`diff_models` lints both models and :func:`diff_graphs` compares them:

- **Totals** before/after/delta: headline MACs, parameters, the summary receptive field,
  the output shapes (outputs matched by position).
- **Layers** matched as :mod:`archlint.layer_matching` pairs them (module paths first, then
  structure), so that a re-export with the other torch exporter diffs as identical.
- **Changed** layers name each difference: ``output_shape``, ``kernel``, ``stride``,
  ``padding``, ``dilation``, ``groups``, ``macs``, ``params``, ``receptive_field``
  (size, effective stride and effective padding).
- **Parameters are compared without biases.** Both exporters fold BatchNorm into the conv
  before it; the legacy exporter keeps the folded bias even when it is all zeros, the
  dynamo exporter drops zero biases, and archlint does not read weight values, so it cannot
  tell a dropped zero bias from a removed real one. The diff's ``params`` are therefore
  weight parameters (conv/linear bias vectors excluded); a layer that differs only by having
  a bias is listed under ``bias_only`` (exporter noise) and the bias parameters appear as a
  separate total, ``bias_params``.
- **Findings** new / fixed / unchanged, compared by fingerprint
  (:mod:`archlint.engine.baseline`), with HEAD layers renamed to their BASE match first.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine.baseline import fingerprint, fingerprint_keys
from .graph import Graph, Layer, Op
from .layer_matching import MatchView, match_layers, match_view
from .report import Finding, Report, Severity, number, plain

__all__ = ["LayerChange", "ModelDiff", "diff_graphs", "diff_models", "DIFF_SCHEMA_VERSION"]

DIFF_SCHEMA_VERSION = 1
_BIASED = (Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR, Op.MATMUL)


def bias_params(layer: Layer) -> int:
    """Parameters of a conv/linear layer's bias vector (0 without one, or for other ops)."""
    if layer.op in _BIASED and len(layer.param_shapes) > 1:
        return sum(math.prod(s) for s in layer.param_shapes[1:])
    return 0


def weight_params(layer: Layer) -> int:
    """Parameters of ``layer`` without its conv/linear bias."""
    return sum(math.prod(s) for s in layer.param_shapes) - bias_params(layer)


# --- the diff -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerChange:
    """One matched layer whose measured or structural properties differ."""

    base: str
    head: str
    op: str
    differences: tuple[tuple[str, Any, Any], ...]  # (field, before, after)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(d[0] for d in self.differences)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.head, "base_layer": self.base, "op": self.op,
                "changes": [{"field": f, "before": plain(a), "after": plain(b)} for f, a, b in self.differences]}


@dataclass(frozen=True)
class ModelDiff:
    """Everything that differs between BASE and HEAD; see the module docstring and docs/diff-json.md."""

    base: Report
    head: Report
    totals: dict[str, dict[str, Any]]
    added: tuple[dict[str, Any], ...]
    removed: tuple[dict[str, Any], ...]
    changed: tuple[LayerChange, ...]
    replaced: tuple[dict[str, Any], ...]
    bias_only: tuple[dict[str, Any], ...]
    unchanged: int
    new_findings: tuple[Finding, ...]
    fixed_findings: tuple[Finding, ...]
    unchanged_findings: tuple[Finding, ...]
    matched: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def identical(self) -> bool:
        """No layer added, removed or changed, no finding new or fixed, equal totals (bias excluded)."""
        return not (self.added or self.removed or self.changed or self.new_findings or self.fixed_findings) \
            and all(t["delta"] in (0, None) for k, t in self.totals.items() if k != "bias_params")

    def failing(self, fail_on: Severity | str = Severity.WARNING) -> tuple[Finding, ...]:
        """New findings at or above ``fail_on``."""
        level = Severity(fail_on).rank
        return tuple(f for f in self.new_findings if f.severity.rank >= level)

    def to_dict(self) -> dict[str, Any]:
        def finding(f: Finding) -> dict:
            return f.to_dict()
        return {"schema_version": DIFF_SCHEMA_VERSION, "kind": "diff",
                "tool": {"name": "archlint", "version": self.head.tool_version},
                "base": self.base.model, "head": self.head.model, "identical": self.identical,
                "totals": plain(self.totals),
                "layers": {"added": plain(list(self.added)), "removed": plain(list(self.removed)),
                           "changed": [c.to_dict() for c in self.changed],
                           "replaced": plain(list(self.replaced)), "bias_only": plain(list(self.bias_only)),
                           "unchanged": self.unchanged},
                "findings": {"new": [finding(f) for f in self.new_findings],
                             "fixed": [finding(f) for f in self.fixed_findings],
                             "unchanged": [finding(f) for f in self.unchanged_findings]}}


def _rows(report: Report) -> dict[str, Any]:
    return {r.name: r for r in report.layers}


def _field(row) -> tuple | None:
    if row is None or row.receptive_field is None:
        return None
    return (tuple(row.receptive_field), None if row.rf_global else tuple(row.effective_stride or ()),
            tuple(row.effective_padding or ()), row.rf_global)


def _field_value(rf) -> dict | None:
    if rf is None:
        return None
    size, stride, padding, is_global = rf
    return {"size": list(size), "stride": None if stride is None else list(stride), "padding": list(padding),
            "global": is_global}


def _layer_entry(view: MatchView, name: str) -> dict[str, Any]:
    layer, row = view.layer(name), _rows(view.report).get(name)
    return {"layer": name, "op": layer.op.value, "output_shape": list(layer.output_shape or ()) or None,
            "macs": row.macs if row else 0, "params": weight_params(layer)}


def _compare(bl: Layer, hl: Layer, brow, hrow) -> list[tuple[str, Any, Any]]:
    diffs = []
    pairs = [("output_shape", bl.output_shape, hl.output_shape), ("kernel", bl.kernel, hl.kernel),
             ("stride", bl.stride, hl.stride), ("padding", (bl.pads_begin, bl.pads_end), (hl.pads_begin, hl.pads_end)),
             ("dilation", bl.dilation, hl.dilation), ("groups", bl.groups, hl.groups),
             ("macs", brow.macs if brow else 0, hrow.macs if hrow else 0),
             ("params", weight_params(bl), weight_params(hl))]
    for name, a, b in pairs:
        if a != b:
            diffs.append((name, a, b))
    fa, fb = _field(brow), _field(hrow)
    if fa != fb:
        diffs.append(("receptive_field", _field_value(fa), _field_value(fb)))
    return diffs


def _summary_field(report: Report) -> dict | None:
    rf = report.summary.receptive_field
    if rf is None:
        return None
    return {"size": [number(v) for v in rf.size], "stride": [number(v) for v in rf.stride],
            "padding": [number(v) for v in rf.padding], "covers_input": rf.covers_input}


def _delta(before: Any, after: Any) -> Any:
    if isinstance(before, int) and isinstance(after, int):
        return after - before
    return None if before == after else {"before": before, "after": after}


def _finding_keys(report: Report, rename: Mapping[str, str], view: MatchView,
                  rule_keys: Mapping[str, tuple[str, ...]]) -> list[str]:
    keys = []
    for f in report.findings:
        layer = rename.get(f.layer, f.layer)
        graph = view.graph
        info = {}
        if layer in graph:
            info = {layer: (graph.layer(layer).op.value, graph.layer(layer).source_op)}
        keys.append(fingerprint(f.code, layer, f.to_dict()["data"], info, rule_keys.get(f.code, ())))
    return keys


def _entries_under(entries: Sequence[dict]) -> Callable[[str], list[dict]]:
    """A lookup of the entries whose layer lies under a module (``conv2`` -> ``conv2.0``, ``conv2.1``).

    Answers in graph order, by bisection in the sorted names: two unrelated models of
    thousands of layers each would otherwise compare every removed layer with every added one.
    """
    names = sorted((e["layer"], i) for i, e in enumerate(entries))
    keys = [name for name, _ in names]

    def under(module: str) -> list[dict]:
        lo, hi = bisect_left(keys, module + "."), bisect_left(keys, module + "/")  # "/" follows "."
        return [entries[i] for i in sorted(i for _, i in names[lo:hi])]
    return under


def diff_graphs(base_graph: Graph, base: Report, head_graph: Graph, head: Report) -> ModelDiff:
    """The :class:`ModelDiff` of two linted graphs (reports from :func:`archlint.lint_graph`)."""
    bv, hv = match_view(base_graph, base), match_view(head_graph, head)
    match = match_layers(bv, hv)
    brows, hrows = _rows(base), _rows(head)
    changed, bias_only, unchanged = [], [], 0
    for h in hv.order:
        if h not in match:
            continue
        b = match[h]
        bl, hl = bv.layer(b), hv.layer(h)
        if bl.op is Op.INPUT and hl.op is Op.INPUT:
            diffs = [d for d in _compare(bl, hl, brows.get(b), hrows.get(h)) if d[0] == "output_shape"]
        else:
            diffs = _compare(bl, hl, brows.get(b), hrows.get(h))
        if diffs:
            changed.append(LayerChange(b, h, hl.op.value, tuple(diffs)))
        else:
            unchanged += 1
        if bias_params(bl) != bias_params(hl):
            bias_only.append({"layer": h, "base_layer": b, "before": bias_params(bl), "after": bias_params(hl),
                              "only": not diffs})
    matched_base = set(match.values())
    removed = tuple(_layer_entry(bv, b) for b in bv.order if b not in matched_base)
    added = tuple(_layer_entry(hv, h) for h in hv.order if h not in match)
    replaced = []

    def group(before: list[dict], after: list[dict]) -> None:
        replaced.append({"before": [e["layer"] for e in before], "after": [e["layer"] for e in after],
                         "macs_before": sum(e["macs"] for e in before), "macs_after": sum(e["macs"] for e in after),
                         "params_before": sum(e["params"] for e in before),
                         "params_after": sum(e["params"] for e in after)})
    added_under, removed_under = _entries_under(added), _entries_under(removed)
    for entry in removed:  # a module replaced by submodules (conv2 -> conv2.0, conv2.1)
        parts = added_under(entry["layer"])
        if parts:
            group([entry], parts)
    for entry in added:  # submodules merged into one module (conv2.0, conv2.1 -> conv2)
        parts = removed_under(entry["layer"])
        if parts:
            group(parts, [entry])
    # totals
    def total_params(view: MatchView) -> tuple[int, int]:
        layers = [view.graph.layer(n) for n in view.graph.order()]
        return sum(weight_params(x) for x in layers), sum(bias_params(x) for x in layers)
    bw, bb = total_params(bv)
    hw, hb = total_params(hv)
    bout = [list(s) if s else None for s in base.summary.outputs.values()]
    hout = [list(s) if s else None for s in head.summary.outputs.values()]
    totals = {}
    for key, before, after in (("macs", base.summary.macs, head.summary.macs), ("params", bw, hw),
                               ("bias_params", bb, hb),
                               ("receptive_field", _summary_field(base), _summary_field(head)),
                               ("output_shape", bout, hout)):
        totals[key] = {"before": before, "after": after, "delta": _delta(before, after)}
    # findings
    rename = {h: b for h, b in match.items()}
    for removed_name, kept in hv.alias.items():  # findings on spliced layers follow their stand-in
        rename.setdefault(removed_name, match.get(kept, kept))
    rule_keys = fingerprint_keys(base, head)
    bkeys = _finding_keys(base, {}, bv, rule_keys)
    hkeys = _finding_keys(head, rename, bv, rule_keys)
    pool = Counter(bkeys)
    new, same = [], []
    for f, k in zip(head.findings, hkeys):
        if pool[k] > 0:
            pool[k] -= 1
            same.append(f)
        else:
            new.append(f)
    fixed = []
    for f, k in zip(base.findings, bkeys):
        if pool[k] > 0:
            pool[k] -= 1
            fixed.append(f)
    return ModelDiff(base, head, totals, added, removed, tuple(changed), tuple(replaced), tuple(bias_only),
                     unchanged, tuple(new), tuple(fixed), tuple(same), match)


def diff_models(base: Any, head: Any, config=None, *, unsafe_load_pickle: bool = False) -> ModelDiff:
    """Lint ``base`` and ``head`` (anything :func:`archlint.lint` accepts) and diff them.

    HEAD is linted with BASE's summary as the reference report, so that options declared
    with a ``reference`` field (the MAC-growth budget's reference MAC count) read BASE's.

    Raises
    ------
    ArchlintError
        Either model cannot be read, or the configuration is invalid.
    """
    from .engine.config import Config
    from .engine.registry import discover_rules
    from .engine.run import lint_graph
    from .frontends import load_graph

    config = config or Config()
    rules = discover_rules(config.rules_paths)  # once: --rules-path files are run when read
    base_graph = load_graph(base, config.input_shapes, unsafe_load_pickle=unsafe_load_pickle)
    base_report = lint_graph(base_graph, config, rules)
    head_graph = load_graph(head, config.input_shapes, unsafe_load_pickle=unsafe_load_pickle)
    head_report = lint_graph(head_graph, config.override(reference=base_report.summary.to_dict()), rules)
    return diff_graphs(base_graph, base_report, head_graph, head_report)
