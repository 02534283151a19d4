"""Plain-text output: findings one per line (flake8 style), a summary, and optionally the layer table."""

from __future__ import annotations

from collections.abc import Sequence

from ..formatting import field_text, format_dims, si_count
from ..report import Report
from .locations import base_folder, definition_and_call, shown_locations

__all__ = ["render_text"]


def _table(report: Report, base: str) -> list[str]:
    header = ("layer", "op", "output", "MACs", "params", "receptive field", "defined at", "called at")
    rows = [header]
    for r in report.layers:
        shape = format_dims(r.output_shape) if r.output_shape else "?"
        rows.append((r.name, r.op, shape, f"{r.macs:,}" if r.macs else "", f"{r.params:,}" if r.params else "",
                     field_text(r.receptive_field, r.effective_stride, r.effective_padding, r.rf_global),
                     *shown_locations(r.defined_at, r.source, base)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {3, 4}
    lines = []
    for k, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _summary(report: Report) -> list[str]:
    s = report.summary
    lines = [f"{report.model}: {len(report.findings)} finding{'s' if len(report.findings) != 1 else ''}, "
             f"{s.layers} layers",
             f"  MACs      {si_count(s.macs, ' ')} ({s.macs:,}; conv + matrix products)",
             f"  params    {si_count(s.params, ' ')} ({s.params:,})"]
    if s.receptive_field is not None:
        rf = s.receptive_field
        cover = "covers" if rf.covers_input else "does not cover"
        extent = format_dims(rf.input_extent)
        lines.append(f"  receptive field {field_text(rf.size, rf.stride, rf.padding, rf.is_global)} at {rf.layer} "
                     f"({cover} the {extent} input)")
    if s.macs_saved:
        lines.append(f"  MACs saved if the suggestions were applied: {si_count(s.macs_saved, ' ')} "
                     f"({100 * s.macs_saved / s.macs:.1f}%)" if s.macs else "")
    if s.other_ops:
        parts = ", ".join(f"{k} {si_count(v, ' ')}" for k, v in s.other_ops.items())
        lines.append(f"  other ops (not in MACs): {parts}")
    if s.unsupported_ops:
        parts = ", ".join(f"{k} x{v}" for k, v in sorted(s.unsupported_ops.items()))
        lines.append(f"  ops not understood (kept as 'other': no MACs counted for them, receptive field unknown after them): {parts}")
    lines.extend(f"  note: {n}" for n in s.notes)
    return lines


def render_text(reports: Sequence[Report], show_layers: bool = False, *, base: str | None = None) -> str:
    """Findings of all reports, then per report its summary (and layer table if asked).

    Each finding names the line that defines its layer and the line that calls it, with
    paths relative to ``base`` (default: the working directory) when they lie under it.
    """
    base = base_folder(base)
    lines: list[str] = []
    for report in reports:
        for f in report.findings:
            where = definition_and_call(f.defined_at, f.source, base)
            where = f" ({where})" if where else ""
            lines.append(f"{report.model}:{f.layer}: {f.code} [{f.severity}] {f.message}{where}")
    for report in reports:
        if lines:
            lines.append("")
        if show_layers:
            lines.extend(_table(report, base))
            lines.append("")
        lines.extend(_summary(report))
    return "\n".join(lines) + "\n"
