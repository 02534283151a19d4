"""The Report: what one lint run found and measured, as plain immutable data.

Built by the engine from the graph, the analyses and the findings; rendered by
``archlint.reports``. ``Report.to_dict()`` is the versioned JSON document
(``SCHEMA_VERSION``); its layout is described in ``docs/json-schema.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .graph import Source

__all__ = ["SCHEMA_VERSION", "Severity", "Edit", "Finding", "LayerRow", "FieldSummary", "Summary", "RuleInfo",
           "Report", "number", "plain"]

SCHEMA_VERSION = 1


class Severity(str, enum.Enum):
    """How bad a finding is; ``--fail-on`` picks the lowest one that fails a run."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Edit:
    """A suggested change of source code: replace ``original`` by ``replacement``.

    The region runs from (``line``, ``column``) to (``end_line``, ``end_column``); lines
    count from 1, columns from 1 in Unicode code points, the end column exclusive.
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    original: str
    replacement: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "end_line": self.end_line,
                "end_column": self.end_column, "original": self.original, "replacement": self.replacement,
                "description": self.description}


@dataclass(frozen=True)
class Finding:
    """One design flaw at one layer, with the numbers behind the message in ``data``.

    ``defined_at`` is the Python line that constructs the layer (or the small block
    holding it), the line to edit; ``source`` the line where ``forward`` calls it;
    ``construction`` the construction lines from the innermost outwards.
    """

    code: str
    rule: str
    severity: Severity
    message: str
    layer: str
    source: Source | None = None
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    defined_at: Source | None = field(default=None, compare=False)
    construction: tuple[Source, ...] = field(default=(), compare=False)
    edit: Edit | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "rule": self.rule, "severity": self.severity.value,
                "message": self.message, "layer": self.layer, "source": _text(self.source),
                "defined_at": _text(self.defined_at), "construction": [str(s) for s in self.construction],
                "fix": self.fix, "suggested_edit": None if self.edit is None else self.edit.to_dict(),
                "data": plain(self.data)}


#: Types JSON takes as they are; checked first because ``isinstance(x, Fraction)`` goes through
#: the ABC machinery of ``numbers`` and is slow on every layer of a large report.
_JSON_SCALARS = frozenset({int, float, str, bool, type(None)})


def number(value: Fraction | int | float) -> int | float:
    """A JSON-friendly number: integers stay exact, fractions become floats."""
    if type(value) not in _JSON_SCALARS and isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    return value


def _text(source: Source | None) -> str | None:
    """``file:line`` of a Python location as the JSON report carries it."""
    return None if source is None else str(source)


def _numbers(values: tuple[Fraction | int, ...] | None) -> list[int | float] | None:
    """:func:`number` of each value, as a list (``None`` stays ``None``)."""
    if values is None:
        return None
    for v in values:
        if type(v) is not int:
            return [number(v) for v in values]
    return list(values)  # all ints already (the common case): no call per value


def plain(value: Any) -> Any:
    """``value`` with JSON's types only: dict keys as text, tuples as lists, fractions and enums as numbers and text."""
    if type(value) in _JSON_SCALARS:
        return value
    # members that are JSON scalars already (nearly all of a finding's data) are taken as they are
    if isinstance(value, dict):
        return {k if type(k) is str else str(k): v if type(v) in _JSON_SCALARS else plain(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _JSON_SCALARS else plain(v) for v in value]
    if isinstance(value, Fraction):
        return number(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass(frozen=True)
class LayerRow:
    """One line of the per-layer table."""

    name: str
    op: str
    source_op: str
    output_shape: tuple[int, ...] | None
    macs: int
    params: int
    other_ops: int
    other_category: str
    receptive_field: tuple[Fraction, ...] | None
    effective_stride: tuple[Fraction, ...] | None
    effective_padding: tuple[Fraction, ...] | None
    rf_global: bool = False
    global_context: bool = False
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    groups: int = 1
    source: Source | None = None
    defined_at: Source | None = None

    def to_dict(self) -> dict[str, Any]:
        shape, source, defined_at = self.output_shape, self.source, self.defined_at
        return {"name": self.name, "op": self.op, "source_op": self.source_op,
                "output_shape": None if shape is None else list(shape),
                "macs": self.macs, "params": self.params,
                "other_ops": self.other_ops, "other_ops_category": self.other_category or None,
                "receptive_field": _numbers(self.receptive_field),
                "effective_stride": None if self.rf_global else _numbers(self.effective_stride),
                "effective_padding": _numbers(self.effective_padding),
                "receptive_field_global": self.rf_global, "global_context": self.global_context,
                "kernel": list(self.kernel), "stride": list(self.stride), "groups": self.groups,
                "source": None if source is None else str(source),
                "defined_at": None if defined_at is None else str(defined_at)}


@dataclass(frozen=True)
class FieldSummary:
    """The model's summary receptive field (last feature map with spatial extent).

    ``is_global``: every position of that map already sees the whole input (a token map
    after attention over all positions); ``size`` then spans the input and its padding.
    """

    layer: str
    size: tuple[Fraction, ...]
    stride: tuple[Fraction, ...]
    padding: tuple[Fraction, ...]
    input_extent: tuple[int, ...]
    #: Whether the field spans the whole input along every axis.
    covers_input: bool
    global_context: bool = False
    is_global: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "size": [number(v) for v in self.size],
                "stride": [number(v) for v in self.stride], "padding": [number(v) for v in self.padding],
                "input_extent": list(self.input_extent), "covers_input": self.covers_input,
                "global_context": self.global_context, "global": self.is_global}


@dataclass(frozen=True)
class Summary:
    """Model-wide totals."""

    macs: int
    params: int
    other_ops: dict[str, int]
    receptive_field: FieldSummary | None
    inputs: dict[str, tuple[int, ...] | None]
    outputs: dict[str, tuple[int, ...] | None]
    layers: int
    unsupported_ops: dict[str, int]
    notes: tuple[str, ...]
    macs_saved: int = 0
    #: Total under the chosen counting convention: ``{"total", "unit", "include", "convention"}``
    #: (see ``archlint.analyses.macs.Convention``); ``None`` means the headline convention.
    count: dict[str, Any] | None = None
    #: Baseline applied to this run: ``{"file", "baselined", "fixed": [findings]}``, or ``None``.
    baseline: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        count = self.count or {"total": self.macs, "unit": "macs", "include": [],
                               "convention": "multiply-accumulates of convolutions and matrix products"}
        return {"macs": self.macs, "params": self.params, "count": plain(count),
                "baseline": plain(self.baseline),
                "macs_convention": "multiply-accumulates of convolutions and matrix products "
                                   "(torchvision GFLOPS convention; FLOPs = 2 x MACs)",
                "other_ops": dict(self.other_ops),
                "other_ops_convention": "one operation per output element (per window element for "
                                        "pooling); not included in macs",
                "macs_saved_if_fixed": self.macs_saved,
                "receptive_field": None if self.receptive_field is None else self.receptive_field.to_dict(),
                "inputs": {k: None if v is None else list(v) for k, v in self.inputs.items()},
                "outputs": {k: None if v is None else list(v) for k, v in self.outputs.items()},
                "layers": self.layers, "unsupported_ops": dict(self.unsupported_ops),
                "notes": list(self.notes)}


@dataclass(frozen=True)
class RuleInfo:
    """What a report knows about a rule that ran, as plain data (``Rule.describe()``).

    ``sections`` are the docstring's ``## Section`` blocks in order, then the options
    generated from the rule's ``Option`` declarations; ``options`` are those declarations
    as dicts (``name``, ``qualified``, ``type``, ``default``, ``help``, ``aliases``).
    """

    code: str
    name: str
    severity: Severity
    summary: str
    sections: tuple[tuple[str, str], ...] = ()
    options: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    fingerprint_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """Everything one lint run produced for one model; ``rules`` describes the rules that ran."""

    model: str
    format: str
    summary: Summary
    layers: tuple[LayerRow, ...]
    findings: tuple[Finding, ...]
    tool_version: str = ""
    rules: tuple[RuleInfo, ...] = ()

    def failing(self, fail_on: Severity | str = Severity.WARNING) -> tuple[Finding, ...]:
        """Findings at or above ``fail_on``."""
        level = Severity(fail_on).rank
        return tuple(f for f in self.findings if f.severity.rank >= level)

    def layer(self, name: str) -> LayerRow:
        """The table row of layer ``name``."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def _repr_html_(self) -> str:
        """Jupyter: the HTML report (plots, findings, layer table) of this model."""
        from .reports.html import render_html_fragment

        return render_html_fragment([self], prefix=f"archlint-{id(self):x}-")

    def with_count(self, convention) -> "Report":
        """This report with ``summary.count`` under ``convention`` (``archlint.analyses.macs.Convention``)."""
        from dataclasses import replace

        from .analyses.macs import convention_total

        count = {"total": convention_total(self.layers, convention), **convention.to_dict()}
        return replace(self, summary=replace(self.summary, count=count))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION,
                "tool": {"name": "archlint", "version": self.tool_version},
                "model": self.model, "format": self.format,
                "summary": self.summary.to_dict(),
                "findings": [f.to_dict() for f in self.findings],
                "layers": [row.to_dict() for row in self.layers]}
