"""Plain-text output: findings one per line (flake8 style), a summary, and optionally the layer table."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..formatting import format_dims, format_number
from ..report import Report
from .locations import definition_and_call, shown

__all__ = ["render_text", "human", "field_text"]


def human(value: int) -> str:
    """Compact count with an SI suffix: ``4.089 G``, ``25.56 M``, ``512``.

    Examples
    --------
    >>> human(4089184256), human(25557032), human(3_504_872), human(999)
    ('4.089 G', '25.56 M', '3.505 M', '999')
    """
    for factor, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(value) >= factor:
            scaled = value / factor
            digits = 3 if abs(scaled) < 10 else 2 if abs(scaled) < 100 else 1
            return f"{scaled:.{digits}f} {suffix}"
    return str(value)


def field_text(size, stride=None, padding=None, is_global: bool = False) -> str:
    """``427x427 /32 pad 213`` (size, effective stride, effective padding)."""
    if size is None:
        return "?"
    text = format_dims(size)
    if is_global:
        return f"global ({text})"
    if stride is not None:
        text += " /" + (format_dims(stride) if len(set(stride)) > 1 else format_number(stride[0]))
    if padding is not None:
        text += " pad " + (format_dims(padding) if len(set(padding)) > 1 else format_number(padding[0]))
    return text


def _table(report: Report, base: str) -> list[str]:
    header = ("layer", "op", "output", "MACs", "params", "receptive field", "defined at", "called at")
    rows = [header]
    for r in report.layers:
        shape = format_dims(r.output_shape) if r.output_shape else "?"
        rows.append((r.name, r.op, shape, f"{r.macs:,}" if r.macs else "", f"{r.params:,}" if r.params else "",
                     field_text(r.receptive_field, r.effective_stride, r.effective_padding, r.rf_global),
                     shown(r.defined_at, base), shown(r.source, base)))
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
             f"  MACs      {human(s.macs)} ({s.macs:,}; conv + matrix products)",
             f"  params    {human(s.params)} ({s.params:,})"]
    if s.receptive_field is not None:
        rf = s.receptive_field
        cover = "covers" if rf.covers_input else "does not cover"
        extent = format_dims(rf.input_extent)
        lines.append(f"  receptive field {field_text(rf.size, rf.stride, rf.padding, rf.is_global)} at {rf.layer} "
                     f"({cover} the {extent} input)")
    if s.macs_saved:
        lines.append(f"  MACs saved if the suggestions were applied: {human(s.macs_saved)} "
                     f"({100 * s.macs_saved / s.macs:.1f}%)" if s.macs else "")
    if s.other_ops:
        parts = ", ".join(f"{k} {human(v)}" for k, v in s.other_ops.items())
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
    base = os.path.abspath(base or os.getcwd())
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
