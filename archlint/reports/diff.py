"""Renderers of a ModelDiff: text, JSON (docs/diff-json.md) and PR-comment Markdown; no I/O."""

from __future__ import annotations

from typing import Any

from ..diff import ModelDiff
from ..formatting import field_text, format_dims, si_count
from .json_text import dumps
from .markdown import escape_cell

__all__ = ["render_diff_text", "render_diff_json", "render_diff_markdown", "DIFF_RENDERERS"]

MAX_ROWS = 30


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("macs", "params", "bias_params") and isinstance(value, int):
        return f"{si_count(value, ' ')} ({value:,})"
    if key == "output_shape" and isinstance(value, list):
        return ", ".join(format_dims(s) if s else "?" for s in value)
    if isinstance(value, dict) and "size" in value:  # a receptive field: the summary's, or a layer's
        return field_text(value["size"], value["stride"], value.get("padding"), value.get("global", False))
    if isinstance(value, (list, tuple)):
        return format_dims(value) if all(isinstance(v, int) for v in value) else str(value)
    return str(value)


def _delta(key: str, total: dict) -> str:
    delta, before = total["delta"], total["before"]
    if delta is None or delta == 0:
        return "="
    if isinstance(delta, int):
        share = f" ({100 * delta / before:+.1f}%)" if before else ""
        return f"{'+' if delta > 0 else '-'}{si_count(abs(delta), ' ')}{share}"
    return "changed"


_LABELS = {"macs": "MACs", "params": "params (weights)", "bias_params": "bias params (exporter-dependent)",
           "receptive_field": "receptive field", "output_shape": "output shape"}


def _change_text(change) -> str:
    return "; ".join(f"{f} {_value(f, a)} -> {_value(f, b)}" for f, a, b in change.differences)


def _finding_line(model: str, f) -> str:
    return f"{model}:{f.layer}: {f.code} [{f.severity}] {f.message}"


def render_diff_text(diff: ModelDiff) -> str:
    """Plain text: new findings first, then totals, layer changes, fixed findings."""
    lines = []
    for f in diff.new_findings:
        lines.append("new   " + _finding_line(diff.head.model, f))
    for f in diff.fixed_findings:
        lines.append("fixed " + _finding_line(diff.base.model, f))
    if lines:
        lines.append("")
    lines.append(f"diff {diff.base.model} -> {diff.head.model}: "
                 + ("identical" if diff.identical else
                    f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed layers; "
                    f"{len(diff.new_findings)} new, {len(diff.fixed_findings)} fixed findings")
                 + f" ({diff.unchanged} layers and {len(diff.unchanged_findings)} findings unchanged)")
    for key, total in diff.totals.items():
        lines.append(f"  {_LABELS[key]:<34} {_value(key, total['before'])} -> {_value(key, total['after'])}"
                     f"  [{_delta(key, total)}]")
    for r in diff.replaced:
        lines.append(f"  replaced {', '.join(r['before'])} by {', '.join(r['after'])}: MACs {si_count(r['macs_before'], ' ')} -> "
                     f"{si_count(r['macs_after'], ' ')}")
    for sign, entries in (("-", diff.removed), ("+", diff.added)):
        for a in entries:
            lines.append(f"  {sign} {a['layer']} ({a['op']}, {_value('output_shape', [a['output_shape']])}, "
                         f"{si_count(a['macs'], ' ')} MACs)")
    for c in diff.changed:
        name = c.head if c.head == c.base else f"{c.base} -> {c.head}"
        lines.append(f"  ~ {name}: {_change_text(c)}")
    noise = [b for b in diff.bias_only if b["only"]]
    if noise:
        lines.append(f"  note: {len(noise)} layer(s) differ only by a bias vector (BatchNorm folding differs "
                     "between exporters); not counted as changes")
    return "\n".join(lines) + "\n"


def render_diff_json(diff: ModelDiff) -> str:
    """The versioned document of ``ModelDiff.to_dict()`` (docs/diff-json.md)."""
    return dumps(diff.to_dict(), 3)  # one layer change, one finding per line


def render_diff_markdown(diff: ModelDiff, max_rows: int = MAX_ROWS) -> str:
    """A PR comment: verdict, new findings, totals table with deltas, then layer changes (capped)."""
    def code(text: str) -> str:
        return f"`{' '.join(str(text).split()).replace('`', '')}`"
    lines = [f"## archlint diff: {code(diff.base.model)} → {code(diff.head.model)}", ""]
    if diff.identical:
        lines.append("**No architectural change**: same layers, same totals, same findings.")
    else:
        lines.append(f"**{len(diff.new_findings)} new finding{'s' if len(diff.new_findings) != 1 else ''}**, "
                     f"{len(diff.fixed_findings)} fixed · {len(diff.added)} layers added, {len(diff.removed)} "
                     f"removed, {len(diff.changed)} changed")
    if diff.new_findings:
        lines += ["", "### New findings", "", "| severity | code | layer | finding |", "|---|---|---|---|"]
        for f in sorted(diff.new_findings, key=lambda f: -f.severity.rank)[:max_rows]:
            lines.append(f"| {f.severity} | {f.code} | {code(f.layer)} | {escape_cell(f.message)} |")
        if len(diff.new_findings) > max_rows:
            lines.append(f"\n… and {len(diff.new_findings) - max_rows} more.")
    lines += ["", "| | base | head | delta |", "|---|--:|--:|--:|"]
    for key, total in diff.totals.items():
        lines.append(f"| {_LABELS[key]} | {escape_cell(_value(key, total['before']))} | "
                     f"{escape_cell(_value(key, total['after']))} | {escape_cell(_delta(key, total))} |")
    if diff.fixed_findings:
        lines += ["", "### Fixed findings", ""]
        lines += [f"- {f.code} at {code(f.layer)}: {escape_cell(f.message)}" for f in diff.fixed_findings[:max_rows]]
    rows = ([("replaced", ", ".join(r["before"]), f"by {', '.join(r['after'])}; MACs {si_count(r['macs_before'], ' ')} → "
              f"{si_count(r['macs_after'], ' ')}") for r in diff.replaced]
            + [("removed", a["layer"], f"{a['op']}, {si_count(a['macs'], ' ')} MACs") for a in diff.removed]
            + [("added", a["layer"], f"{a['op']}, {si_count(a['macs'], ' ')} MACs") for a in diff.added]
            + [("changed", c.head, _change_text(c)) for c in diff.changed])
    if rows:
        lines += ["", "<details><summary>Layer changes</summary>", "", "| | layer | what |", "|---|---|---|"]
        lines += [f"| {kind} | {code(name)} | {escape_cell(what)} |" for kind, name, what in rows[:max_rows]]
        if len(rows) > max_rows:
            lines.append(f"\n… and {len(rows) - max_rows} more (see `archlint diff --format json`).")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


DIFF_RENDERERS = {"text": render_diff_text, "json": render_diff_json, "markdown": render_diff_markdown}
