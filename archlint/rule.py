"""The shape of a rule: declared metadata, documented options, and a ``check`` that yields findings.

A rule is a class with a code (``AL101``), a kebab-case name, a default severity, the
analyses it needs, its options and a docstring with fixed sections (``## What it flags``,
``## Why it matters``, ``## Example``, ``## Fix``). Its ``check(graph, ctx)`` only yields
:class:`~archlint.report.Finding` objects built with ``ctx.finding``; the engine decides
whether it runs, with which options, and which findings are suppressed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import RuleError
from .graph import Graph
from .report import Finding, Severity

__all__ = ["Option", "Rule", "RuleContext", "DOC_SECTIONS"]

#: Sections every rule docstring has, in this order.
DOC_SECTIONS = ("What it flags", "Why it matters", "Example", "Fix")
_CODE = re.compile(r"^[A-Z]{1,4}[0-9]{3}$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Option:
    """A documented rule option: kebab-case name, type, default and help text."""

    name: str
    type: type
    default: Any
    help: str

    def parse(self, value: Any) -> Any:
        """Convert a config or command-line value to the option's type."""
        if self.type is bool and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if self.type in (int, float) and isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return self.type(value)


class Rule:
    """Base class of all rules, built-in and third-party. See the module docstring."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    options: ClassVar[tuple[Option, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not _CODE.match(getattr(cls, "code", "")):
            raise RuleError(f"rule {where}: code {getattr(cls, 'code', None)!r} is not letters + 3 digits")
        if not _NAME.match(getattr(cls, "name", "")):
            raise RuleError(f"rule {where}: name {getattr(cls, 'name', None)!r} is not kebab-case")
        missing = [s for s in DOC_SECTIONS if f"## {s}" not in (cls.__doc__ or "")]
        if missing:
            raise RuleError(f"rule {where} ({cls.code}): docstring lacks sections {missing}")
        for opt in cls.options:
            if not _NAME.match(opt.name):
                raise RuleError(f"rule {cls.code}: option {opt.name!r} is not kebab-case")

    @classmethod
    def summary(cls) -> str:
        """First line of the docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        """The docstring's ``## Section`` blocks, keyed by title."""
        sections: dict[str, list[str]] = {}
        current = None
        for raw in (cls.__doc__ or "").splitlines():
            line = raw.strip()
            if line.startswith("## "):
                current = line[3:].strip()
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
        return {k: "\n".join(v).strip() for k, v in sections.items()}

    def check(self, graph: Graph, ctx: "RuleContext") -> Iterator[Finding]:
        raise NotImplementedError


@dataclass
class RuleContext:
    """What a rule sees besides the graph: its options and the shared analyses."""

    rule: type[Rule]
    options: Mapping[str, Any]
    graph: Graph
    _analysis: Callable[[str], Any] = field(repr=False)

    def analysis(self, name: str) -> Any:
        """Result of an analysis by name (``"costs"``, ``"receptive_fields"``, ...), computed once."""
        return self._analysis(name)

    @property
    def costs(self):
        """:func:`archlint.analyses.macs.costs` of the graph."""
        return self.analysis("costs")

    @property
    def receptive_fields(self):
        """:func:`archlint.analyses.receptive_field.receptive_fields` of the graph."""
        return self.analysis("receptive_fields")

    def finding(self, layer: str, message: str, *, fix: str | None = None,
                data: Mapping[str, Any] | None = None, severity: Severity | None = None) -> Finding:
        """A finding of this rule at ``layer``, with code, severity and source filled in."""
        node = self.graph.layer(layer)
        return Finding(code=self.rule.code, rule=self.rule.name, severity=severity or self.rule.severity,
                       message=message, layer=layer, source=str(node.source) if node.source else None,
                       fix=fix, data=dict(data or {}),
                       defined_at=str(node.defined_at) if node.defined_at else None,
                       construction=tuple(str(s) for s in node.construction))
