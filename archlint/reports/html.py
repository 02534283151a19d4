"""Self-contained HTML report: summary, inline SVG plots, findings and the layer table.

One file, no network: no scripts, no external style sheets, fonts or images; the plots are
SVG drawn here in Python, and a Content-Security-Policy meta tag forbids any load. Per model:

- receptive field and feature-map size (first spatial axis, log2 scale) against depth, with the
  input size as a reference line;
- MACs per layer, the part a finding's ``data.macs_saved`` would save highlighted;
- findings, each linked to its layer's row (``#r0-L12``), and the layer table, each row
  linking back to its findings. Plot points and bars link to the layer rows too.

:func:`render_html_fragment` is the ``<div>`` inside the page's ``<body>`` (styles scoped to
it); Jupyter shows it through ``Report._repr_html_``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..formatting import field_text, format_dims, si_count
from ..graph import Source
from ..report import Report, Severity
from .locations import base_folder, shown_locations

__all__ = ["render_html", "render_html_fragment", "layer_anchor"]

_W, _H = 960, 300
_M = {"left": 64, "right": 16, "top": 28, "bottom": 40}
_COLORS = {"rf": "#1f77b4", "fmap": "#2ca02c", "input": "#7f7f7f", "macs": "#8fa8c8", "saved": "#e6550d"}
_CSS = """
.archlint-report{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;max-width:1200px}
.archlint-report h1{font-size:1.5em;margin:.4em 0}
.archlint-report h2{font-size:1.25em;margin:1.4em 0 .4em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.archlint-report h3{font-size:1.05em;margin:1.1em 0 .3em}
.archlint-report .totals{display:flex;flex-wrap:wrap;gap:.4em 1.6em;margin:.4em 0}
.archlint-report .totals b{font-variant-numeric:tabular-nums}
.archlint-report figure{margin:.6em 0 1em}
.archlint-report figcaption{color:#57606a;font-size:.9em}
.archlint-report svg.plot{width:100%;height:auto;max-width:960px;background:#fff;border:1px solid #d0d7de}
.archlint-report svg text{font-size:11px;fill:#57606a}
.archlint-report svg .grid{stroke:#eaeef2}
.archlint-report svg .axis{stroke:#57606a}
.archlint-report svg .pt-rf{fill:#1f77b4}
.archlint-report svg .pt-rf.global{fill:#fff;stroke:#1f77b4;stroke-width:1.5}
.archlint-report svg .pt-fmap{fill:#2ca02c}
.archlint-report svg .bar{fill:#8fa8c8}
.archlint-report svg .bar.saved{fill:#e6550d}
.archlint-report svg a:hover .bar,.archlint-report svg a:hover circle{opacity:.6}
.archlint-report table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
.archlint-report th,.archlint-report td{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top}
.archlint-report th{background:#f6f8fa}
.archlint-report td.num{text-align:right;font-variant-numeric:tabular-nums}
.archlint-report tr.flagged td{background:#fff8e6}
.archlint-report tr:target td{background:#ffe9a8}
.archlint-report .sev{font-weight:600;text-transform:uppercase;font-size:.8em}
.archlint-report .sev-error{color:#cf222e}
.archlint-report .sev-warning{color:#9a6700}
.archlint-report .sev-info{color:#0969da}
.archlint-report code{font-size:.92em}
.archlint-report .legend span{margin-right:1.2em;white-space:nowrap}
.archlint-report .legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
.archlint-report .fix{color:#57606a}
.archlint-report .called-at{color:#57606a;white-space:nowrap}
"""


def layer_anchor(report_key: str, layer_index: int) -> str:
    """Element id of a layer's table row: ``{report key}-L{layer index}``, e.g. ``r0-L12``."""
    return f"{report_key}-L{layer_index}"


def _a(text) -> str:
    return escape(str(text), quote=True)


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _saved_by_layer(report: Report) -> dict[str, int]:
    saved: dict[str, int] = {}
    for f in report.findings:
        value = f.data.get("macs_saved") if isinstance(f.data, dict) else None
        if isinstance(value, (int, float)) and value > 0:
            saved[f.layer] = saved.get(f.layer, 0) + int(value)
    return saved


def _x_axis(n: int, x) -> list[str]:
    parts = []
    step = max(1, math.ceil(n / 12))
    nice = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000) if s >= step), step)
    bottom = _H - _M["bottom"]
    for i in range(0, n, nice):
        parts.append(f'<line class="axis" x1="{_fmt(x(i))}" y1="{bottom}" x2="{_fmt(x(i))}" y2="{bottom + 4}"/>'
                     f'<text x="{_fmt(x(i))}" y="{bottom + 16}" text-anchor="middle">{i}</text>')
    parts.append(f'<line class="axis" x1="{_M["left"]}" y1="{bottom}" x2="{_W - _M["right"]}" y2="{bottom}"/>'
                 f'<text x="{(_M["left"] + _W - _M["right"]) / 2}" y="{_H - 6}" text-anchor="middle">'
                 'layer index (depth, as in the layer table)</text>')
    return parts


def _x_scale(n: int):
    span = _W - _M["left"] - _M["right"]
    return lambda i: _M["left"] + span * (i + 0.5) / max(n, 1)


def _field_plot(report: Report, rid: str) -> str:
    rows = report.layers
    n = len(rows)
    x = _x_scale(n)
    rf_pts, fmap_pts = [], []
    for i, row in enumerate(rows):
        if row.receptive_field:
            rf_pts.append((i, float(row.receptive_field[0]), row))
        shape = row.output_shape
        if shape is not None and len(shape) >= 3 and shape[2] > 0:
            fmap_pts.append((i, float(shape[2]), row))
    field = report.summary.receptive_field
    extent = float(field.input_extent[0]) if field is not None and field.input_extent else None
    values = [v for _, v, _ in rf_pts + fmap_pts if v > 0] + ([extent] if extent else [])
    lo = math.floor(math.log2(min(values))) if values else 0
    hi = math.ceil(math.log2(max(values))) if values else 1
    hi = max(hi, lo + 1)
    top, bottom = _M["top"], _H - _M["bottom"]

    def y(v: float) -> float:
        return bottom - (bottom - top) * (math.log2(max(v, 2.0 ** lo)) - lo) / (hi - lo)

    parts = [f'<svg class="plot" data-plot="field" viewBox="0 0 {_W} {_H}" role="img" '
             f'aria-label="receptive field and feature-map size against depth">']
    tick = max(1, math.ceil((hi - lo) / 8))
    for k in range(lo, hi + 1, tick):
        parts.append(f'<line class="grid" x1="{_M["left"]}" y1="{_fmt(y(2.0 ** k))}" x2="{_W - _M["right"]}" '
                     f'y2="{_fmt(y(2.0 ** k))}"/><text x="{_M["left"] - 6}" y="{_fmt(y(2.0 ** k) + 4)}" '
                     f'text-anchor="end">{si_count(2 ** k, " ") if k >= 0 else _fmt(2.0 ** k)}</text>')
    parts.append(f'<text x="{_M["left"]}" y="{top - 10}">pixels (log scale), first spatial axis</text>')
    parts += _x_axis(n, x)
    if extent:
        parts.append(f'<line class="input-size" x1="{_M["left"]}" y1="{_fmt(y(extent))}" x2="{_W - _M["right"]}" '
                     f'y2="{_fmt(y(extent))}" stroke="{_COLORS["input"]}" stroke-dasharray="5 4">'
                     f'<title>input size {_fmt(extent)} px</title></line>')
    for name, pts in (("rf", rf_pts), ("fmap", fmap_pts)):
        path, prev = [], None
        for i, v, _ in pts:
            path.append(("L" if prev is not None and i == prev + 1 else "M") + f"{_fmt(x(i))},{_fmt(y(v))}")
            prev = i
        if path:
            parts.append(f'<path class="line-{name}" d="{" ".join(path)}" fill="none" '
                         f'stroke="{_COLORS[name]}" stroke-width="1.5" opacity=".7"/>')
    for name, pts, what in (("rf", rf_pts, "receptive field"), ("fmap", fmap_pts, "feature map")):
        for i, v, row in pts:
            extra = " global" if name == "rf" and row.rf_global else ""
            label = f"{row.name} (#{i}, {row.op}): {what} {_fmt(v)} px" + (" (global)" if extra else "")
            parts.append(f'<a href="#{layer_anchor(rid, i)}"><circle class="pt pt-{name}{extra}" '
                         f'cx="{_fmt(x(i))}" cy="{_fmt(y(v))}" r="3" data-layer="{_a(row.name)}" '
                         f'data-index="{i}" data-value="{_fmt(v)}"><title>{_a(label)}</title></circle></a>')
    parts.append("</svg>")
    legend = (f'<div class="legend"><span><i style="background:{_COLORS["rf"]}"></i>receptive field '
              f'(hollow: global)</span><span><i style="background:{_COLORS["fmap"]}"></i>feature-map size</span>'
              f'<span><i style="background:{_COLORS["input"]}"></i>input size (dashed)</span></div>')
    return (f'<figure>{"".join(parts)}<figcaption>{legend}Receptive field and output size of each layer, '
            f'by position in the layer table. Click a point to jump to its row.</figcaption></figure>')


def _macs_plot(report: Report, rid: str) -> str:
    rows = report.layers
    n = len(rows)
    x = _x_scale(n)
    saved = _saved_by_layer(report)
    top_value = max([r.macs for r in rows] + [1])
    top, bottom = _M["top"], _H - _M["bottom"]
    span = _W - _M["left"] - _M["right"]
    width = max(1.0, min(24.0, span / max(n, 1) * 0.8))

    def y(v: float) -> float:
        return bottom - (bottom - top) * v / top_value

    parts = [f'<svg class="plot" data-plot="macs" viewBox="0 0 {_W} {_H}" role="img" '
             f'aria-label="MACs per layer with suggested savings">']
    for k in range(5):
        v = top_value * k / 4
        parts.append(f'<line class="grid" x1="{_M["left"]}" y1="{_fmt(y(v))}" x2="{_W - _M["right"]}" '
                     f'y2="{_fmt(y(v))}"/><text x="{_M["left"] - 6}" y="{_fmt(y(v) + 4)}" '
                     f'text-anchor="end">{si_count(round(v), " ")}</text>')
    parts.append(f'<text x="{_M["left"]}" y="{top - 10}">MACs per layer</text>')
    parts += _x_axis(n, x)
    for i, row in enumerate(rows):
        if row.macs <= 0:
            continue
        cut = min(saved.get(row.name, 0), row.macs)
        kept = row.macs - cut
        left = _fmt(x(i) - width / 2)
        label = f"{row.name} (#{i}, {row.op}): {row.macs:,} MACs" + (f", {cut:,} saved if fixed" if cut else "")
        bars = (f'<rect class="bar" x="{left}" y="{_fmt(y(kept))}" width="{_fmt(width)}" '
                f'height="{_fmt(bottom - y(kept))}"/>')
        if cut:
            bars += (f'<rect class="bar saved" x="{left}" y="{_fmt(y(row.macs))}" width="{_fmt(width)}" '
                     f'height="{_fmt(y(kept) - y(row.macs))}"/>')
        parts.append(f'<a href="#{layer_anchor(rid, i)}"><g class="layer-bar" data-layer="{_a(row.name)}" '
                     f'data-index="{i}" data-macs="{row.macs}" data-saved="{cut}"><title>{_a(label)}</title>'
                     f'{bars}</g></a>')
    parts.append("</svg>")
    total_saved = sum(min(saved.get(r.name, 0), r.macs) for r in rows)
    legend = (f'<div class="legend"><span><i style="background:{_COLORS["macs"]}"></i>MACs kept</span>'
              f'<span><i style="background:{_COLORS["saved"]}"></i>MACs saved if the suggestions were applied'
              f' ({si_count(total_saved, " ")})</span></div>')
    return f'<figure>{"".join(parts)}<figcaption>{legend}Click a bar to jump to its row.</figcaption></figure>'


def _totals(report: Report) -> str:
    s = report.summary
    items = [("findings", str(len(report.findings))), ("layers", str(s.layers)),
             ("MACs", f"{si_count(s.macs, ' ')} ({s.macs:,})"), ("params", f"{si_count(s.params, ' ')} ({s.params:,})")]
    if s.macs_saved:
        share = f", {100 * s.macs_saved / s.macs:.1f}%" if s.macs else ""
        items.append(("MACs saved if fixed", f"{si_count(s.macs_saved, ' ')}{share}"))
    if s.receptive_field is not None:
        rf = s.receptive_field
        cover = "covers" if rf.covers_input else "does not cover"
        items.append(("receptive field", f"{field_text(rf.size, rf.stride, rf.padding, rf.is_global)} at {rf.layer} "
                                         f"({cover} the {format_dims(rf.input_extent)} input)"))
    body = "".join(f"<span>{_a(k)}: <b>{_a(v)}</b></span>" for k, v in items)
    notes = "".join(f"<li>{_a(n)}</li>" for n in s.notes)
    unsupported = ", ".join(f"{k} x{v}" for k, v in sorted(s.unsupported_ops.items()))
    if unsupported:
        notes += f"<li>ops not understood (no MACs counted for them, receptive field unknown after them): {_a(unsupported)}</li>"
    return f'<div class="totals">{body}</div>' + (f"<ul>{notes}</ul>" if notes else "")


def _where(defined_at: Source | None, source: Source | None, base: str) -> str:
    """The definition line, with the call line beside it (paths relative to ``base``)."""
    defined, call = shown_locations(defined_at, source, base)
    parts = [f'<code class="defined-at">{_a(defined)}</code>'] if defined else []
    if call:
        parts.append(f'<span class="called-at">called at <code>{_a(call)}</code></span>')
    return " ".join(parts)


def _findings_table(report: Report, rid: str, index: dict[str, int], base: str) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    head = ("<table class=\"findings\"><thead><tr><th>severity</th><th>rule</th><th>layer</th><th>finding</th>"
            "<th>MACs saved</th><th>defined at</th></tr></thead><tbody>")
    rows = []
    for k, f in enumerate(report.findings):
        layer = (f'<a href="#{layer_anchor(rid, index[f.layer])}">{_a(f.layer)}</a>' if f.layer in index
                 else _a(f.layer))
        saved = f.data.get("macs_saved") if isinstance(f.data, dict) else None
        fix = f'<div class="fix">Fix: {_a(f.fix)}</div>' if f.fix else ""
        if f.edit is not None:
            fix += (f'<div class="fix">Suggested edit: <code class="edit">{_a(f.edit.replacement)}</code></div>')
        rows.append(f'<tr id="{rid}-f{k}" class="finding sev-row-{f.severity.value}">'
                    f'<td class="sev sev-{f.severity.value}">{f.severity.value}</td>'
                    f"<td><code>{_a(f.code)}</code> {_a(f.rule)}</td><td>{layer}</td>"
                    f"<td>{_a(f.message)}{fix}</td>"
                    f'<td class="num">{si_count(int(saved), " ") if isinstance(saved, (int, float)) and saved else ""}</td>'
                    f"<td>{_where(f.defined_at, f.source, base)}</td></tr>")
    return head + "".join(rows) + "</tbody></table>"


def _layer_table(report: Report, rid: str, base: str) -> str:
    by_layer: dict[str, list[int]] = {}
    for k, f in enumerate(report.findings):
        by_layer.setdefault(f.layer, []).append(k)
    head = ("<table class=\"layers\"><thead><tr><th>#</th><th>layer</th><th>op</th><th>output</th><th>MACs</th>"
            "<th>params</th><th>receptive field</th><th>findings</th><th>defined at</th></tr></thead><tbody>")
    rows = []
    for i, r in enumerate(report.layers):
        shape = format_dims(r.output_shape) if r.output_shape else "?"
        field = field_text(r.receptive_field, r.effective_stride, r.effective_padding, r.rf_global)
        links = " ".join(f'<a href="#{rid}-f{k}">{_a(report.findings[k].code)}</a>' for k in by_layer.get(r.name, ()))
        cls = ' class="flagged"' if r.name in by_layer else ""
        rows.append(f'<tr id="{layer_anchor(rid, i)}"{cls} data-layer="{_a(r.name)}"><td class="num">{i}</td>'
                    f"<td>{_a(r.name)}</td><td>{_a(r.op)}</td><td>{shape}</td>"
                    f'<td class="num">{f"{r.macs:,}" if r.macs else ""}</td>'
                    f'<td class="num">{f"{r.params:,}" if r.params else ""}</td>'
                    f"<td>{_a(field)}</td>"
                    f"<td>{links}</td><td>{_where(r.defined_at, r.source, base)}</td></tr>")
    return head + "".join(rows) + "</tbody></table>"


def _section(report: Report, rid: str, base: str) -> str:
    index = {row.name: i for i, row in enumerate(report.layers)}
    worst = max((f.severity.rank for f in report.findings), default=-1)
    status = ("clean" if worst < 0 else
              f"worst: {[s for s in Severity if s.rank == worst][0].value}")
    return (f'<section class="model" id="{rid}"><h2><code>{_a(report.model)}</code> '
            f'<small>({_a(status)})</small></h2>{_totals(report)}'
            f"<h3>Plots</h3>{_field_plot(report, rid)}{_macs_plot(report, rid)}"
            f"<h3>Findings</h3>{_findings_table(report, rid, index, base)}"
            f"<h3>Layers</h3>{_layer_table(report, rid, base)}</section>")


def render_html_fragment(reports: Sequence[Report], show_layers: bool = True, *, prefix: str = "r",
                         base: str | None = None) -> str:
    """The report as one ``<div class="archlint-report">`` with its scoped ``<style>``.

    Element ids start with ``prefix`` (model ``i`` is ``{prefix}{i}``), so that several
    fragments can share a page, e.g. a notebook. Python paths are shown relative to
    ``base`` (default: the working directory) when they lie under it.
    """
    base = base_folder(base)
    total = sum(len(r.findings) for r in reports)
    version = next((r.tool_version for r in reports if r.tool_version), "")
    title = (f"archlint {_a(version)}: {total} finding{'s' if total != 1 else ''} in {len(reports)} "
             f"model{'s' if len(reports) != 1 else ''}")
    toc = ""
    if len(reports) > 1:
        toc = "<ul>" + "".join(f'<li><a href="#{prefix}{i}"><code>{_a(r.model)}</code></a>: '
                               f"{len(r.findings)} findings</li>" for i, r in enumerate(reports)) + "</ul>"
    body = "".join(_section(r, f"{prefix}{i}", base) for i, r in enumerate(reports))
    return f'<div class="archlint-report"><style>{_CSS}</style><h1>{title}</h1>{toc}{body}</div>'


def render_html(reports: Sequence[Report], show_layers: bool = True, *, base: str | None = None) -> str:
    """A complete, self-contained HTML page (no scripts, no network loads)."""
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>archlint report</title></head><body>"
            f"{render_html_fragment(reports, show_layers, base=base)}</body></html>\n")
