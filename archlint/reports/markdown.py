"""Markdown output sized for a pull-request comment: totals, a findings table, MACs saved.

Tables are capped at ``max_rows`` findings per model (a GitHub comment holds 65,536
characters); the rest is counted in a closing line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..formatting import field_text, format_dims, si_count
from ..graph import Source
from ..report import Report, Severity
from .locations import base_folder, shown_locations

__all__ = ["render_markdown", "escape_cell", "MAX_ROWS"]

MAX_ROWS = 50
_ICON = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "info"}


def escape_cell(text: str) -> str:
    """Text safe inside one Markdown table cell (no pipes, newlines or HTML)."""
    text = " ".join(str(text).split())
    for char, repl in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "\\`"),
                       ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(char, repl)
    return text


def _code(text: str) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else ""


def _counts(findings) -> str:
    by = Counter(f.severity for f in findings)
    parts = [f"{by[s]} {s.value}{'s' if by[s] != 1 and s is not Severity.INFO else ''}"
             for s in (Severity.ERROR, Severity.WARNING, Severity.INFO) if by[s]]
    return ", ".join(parts) if parts else "no findings"


def _where(defined_at: Source | None, source: Source | None, base: str) -> str:
    """The definition line, then the call line beside it: ``net.py:12`` (called at ``net.py:40``)."""
    defined, call = shown_locations(defined_at, source, base)
    parts = [_code(defined)] if defined else []
    if call:
        parts.append(f"(called at {_code(call)})" if parts else f"called at {_code(call)}")
    return " ".join(parts)


def _section(report: Report, max_rows: int, base: str) -> list[str]:
    s = report.summary
    lines = [f"**{len(report.findings)} finding{'s' if len(report.findings) != 1 else ''}** "
             f"({_counts(report.findings)}) · {s.layers} layers · "
             f"{si_count(s.macs, ' ')} MACs · {si_count(s.params, ' ')} params"]
    if s.macs_saved:
        share = f" ({100 * s.macs_saved / s.macs:.1f}% of the model)" if s.macs else ""
        lines.append(f"· **{si_count(s.macs_saved, ' ')} MACs saved** if the suggestions were applied{share}")
    if s.receptive_field is not None:
        rf = s.receptive_field
        extent = format_dims(rf.input_extent)
        cover = "covers" if rf.covers_input else "does not cover"
        lines.append(f"· receptive field {escape_cell(field_text(rf.size, rf.stride, rf.padding, rf.is_global))} "
                     f"at {_code(rf.layer)} ({cover} the {extent} input)")
    lines = [f"### {_code(report.model)}", "", " ".join(lines)]
    if report.findings:
        lines += ["", "| severity | code | layer | finding | MACs saved | defined at |",
                  "|---|---|---|---|--:|---|"]
        ranked = sorted(report.findings, key=lambda f: -f.severity.rank)  # stable: worst first
        for f in ranked[:max_rows]:
            saved = f.data.get("macs_saved") if isinstance(f.data, dict) else None
            message = escape_cell(f.message) + (f"<br>*Fix:* {escape_cell(f.fix)}" if f.fix else "")
            if f.edit is not None:
                message += f"<br>*Suggested edit:* {_code(f.edit.replacement)}"
            lines.append(f"| {_ICON[f.severity]} | {f.code} {escape_cell(f.rule)} | {_code(f.layer)} | "
                         f"{message} | {si_count(int(saved), ' ') if saved else ''} | {_where(f.defined_at, f.source, base)} |")
        if len(report.findings) > max_rows:
            lines.append(f"\n… and {len(report.findings) - max_rows} more findings "
                         "(run archlint locally or see the SARIF upload for all).")
    for note in s.notes:
        lines += ["", f"> note: {escape_cell(note)}"]
    return lines


def render_markdown(reports: Sequence[Report], show_layers: bool = False, *, max_rows: int = MAX_ROWS,
                    base: str | None = None) -> str:
    """A Markdown summary of ``reports`` for a PR comment (``show_layers`` is ignored).

    Source paths are shown relative to ``base`` (default: the working directory).
    """
    base = base_folder(base)
    findings = [f for r in reports for f in r.findings]
    saved = sum(r.summary.macs_saved for r in reports)
    macs = sum(r.summary.macs for r in reports)
    head = (f"## archlint: {len(findings)} finding{'s' if len(findings) != 1 else ''} in {len(reports)} "
            f"model{'s' if len(reports) != 1 else ''}")
    lines = [head, "", f"{_counts(findings)}; {si_count(macs, ' ')} MACs in total"
             + (f", **{si_count(saved, ' ')} MACs saved** if the suggestions were applied" if saved else "") + "."]
    for report in reports:
        lines += [""] + _section(report, max_rows, base)
    return "\n".join(lines) + "\n"
