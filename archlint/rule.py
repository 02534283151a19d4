"""The shape of a rule: its metadata, documented options, declared analyses and a ``check`` yielding findings.

A rule is a class that declares everything the core needs to know about it, so that the
engine, the CLI, baselines and renderers never name a rule code:

- ``code`` (``XY101``), a kebab-case ``name`` and a default ``severity``;
- ``options``: :class:`Option` declarations (type, default, help, deprecated aliases, a
  command-line flag, a value taken from a reference report); their documentation is
  generated from them (:meth:`Rule.options_doc`), never typed into the docstring;
- ``analyses``: the cached analyses ``check`` reads through ``ctx.analysis(name)``, by
  name or as :class:`~archlint.analyses.Analysis` objects the rule brings along;
- ``fingerprint_keys``: the ``data`` keys that say which flaw a finding is, for baselines
  and ``archlint diff`` (never option limits nor measurements that move with other layers);
- a docstring with fixed sections (``## What it flags``, ``## Why it matters``,
  ``## Example``, ``## Fix``).

A base class for a kind of rule (such as ``ModelBudget``) sets ``abstract = True`` in its
own body: it is not checked as a rule, its subclasses are.

``check(graph, ctx)`` only yields :class:`~archlint.report.Finding` objects built with
``ctx.finding``; the engine decides whether it runs, with which options, and which
findings are suppressed.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .analyses import ANALYSES, Analysis
from .errors import RuleError
from .graph import Graph
from .records import frozen_record
from .report import Finding, RuleInfo, Severity

__all__ = ["Option", "Rule", "RuleContext", "DOC_SECTIONS"]

#: Sections every rule docstring has, in this order.
DOC_SECTIONS = ("What it flags", "Why it matters", "Example", "Fix")
_CODE = re.compile(r"^[A-Z]{1,4}[0-9]{3}$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Option:
    """A documented rule option.

    ``name`` is kebab-case and unique within its rule; users write it qualified by the
    rule's code or name (``XY101.max-plain-depth``). ``aliases`` are former unqualified
    names still accepted, with a deprecation note. ``flag`` makes the command line offer
    ``--NAME VALUE``. ``reference`` names a field of a reference report's summary
    (``"macs"``) that the option takes when the run has one (``archlint diff`` BASE, a
    ``--baseline`` report) and the user did not set it.
    """

    name: str
    type: type
    default: Any
    help: str
    aliases: tuple[str, ...] = ()
    flag: bool = False
    reference: str | None = None

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

    @property
    def metavar(self) -> str:
        """How the value is shown in help: the type's ``metavar`` or its upper-cased name."""
        return getattr(self.type, "metavar", self.type.__name__.upper())


class Rule:
    """Base class of all rules, built-in and third-party. See the module docstring."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    options: ClassVar[tuple[Option, ...]] = ()
    analyses: ClassVar[tuple[str | Analysis, ...]] = ()
    fingerprint_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return  # a base class for a kind of rule (e.g. a budget), not a rule itself
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not _CODE.match(getattr(cls, "code", "")):
            raise RuleError(f"rule {where}: code {getattr(cls, 'code', None)!r} is not letters + 3 digits")
        if not _NAME.match(getattr(cls, "name", "")):
            raise RuleError(f"rule {where}: name {getattr(cls, 'name', None)!r} is not kebab-case")
        missing = [s for s in DOC_SECTIONS if f"## {s}" not in (cls.__doc__ or "")]
        if missing:
            raise RuleError(f"rule {where} ({cls.code}): docstring lacks sections {missing}")
        if "## Options" in (cls.__doc__ or ""):
            raise RuleError(f"rule {cls.code}: the docstring has an '## Options' section; options are "
                            "documented by their Option declarations (name, type, default, help)")
        names = [opt.name for opt in cls.options]
        for opt in cls.options:
            if not all(_NAME.match(n) for n in (opt.name, *opt.aliases)):
                raise RuleError(f"rule {cls.code}: option {opt.name!r} or its aliases are not kebab-case")
            if names.count(opt.name) > 1:
                raise RuleError(f"rule {cls.code}: option {opt.name!r} is declared twice")
        for analysis in cls.analyses:
            if not isinstance(analysis, Analysis) and analysis not in ANALYSES:
                raise RuleError(f"rule {cls.code}: unknown analysis {analysis!r} in `analyses` "
                                f"(built-in: {', '.join(ANALYSES)}; or declare an Analysis)")
        if not all(isinstance(k, str) for k in cls.fingerprint_keys) or isinstance(cls.fingerprint_keys, str):
            raise RuleError(f"rule {cls.code}: fingerprint_keys must be a tuple of data key names")

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

    @classmethod
    def analysis_names(cls) -> tuple[str, ...]:
        """Names of the analyses the rule declares."""
        return tuple(a.name if isinstance(a, Analysis) else a for a in cls.analyses)

    @classmethod
    def options_doc(cls) -> str:
        """The options part of the rule's documentation, one bullet per option, generated from ``options``.

        Each bullet reads ``- `CODE.name` (type, default D): help``, then the command-line
        flag, the reference field and any deprecated alias.
        """
        lines = []
        for opt in cls.options:
            default = "none" if opt.default is None else repr(opt.default)
            extras = []
            if opt.flag:
                extras.append(f"Command line: `--{opt.name} {opt.metavar}`.")
            if opt.reference:
                extras.append(f"Set from the reference report's `summary.{opt.reference}` when there is one "
                              "(`archlint diff` BASE, `--baseline`).")
            if opt.aliases:
                extras.append(f"Deprecated name: {', '.join(f'`{a}`' for a in opt.aliases)}.")
            text = " ".join([f"- `{cls.code}.{opt.name}` ({opt.type.__name__}, default {default}): {opt.help}",
                             *extras])
            lines.append(textwrap.fill(text, width=90, subsequent_indent="  ", break_on_hyphens=False))
        return "\n".join(lines)

    @classmethod
    @functools.cache
    def describe(cls) -> RuleInfo:
        """The rule's metadata as plain data, for reports and renderers (built once per rule class)."""
        sections = tuple(cls.doc_sections().items())
        if cls.options:
            sections += (("Options", cls.options_doc()),)
        options = tuple({"name": o.name, "qualified": f"{cls.code}.{o.name}", "type": o.type.__name__,
                         "default": o.default, "help": o.help, "aliases": list(o.aliases)} for o in cls.options)
        return RuleInfo(cls.code, cls.name, Severity(cls.severity), cls.summary(), sections, options,
                        tuple(cls.fingerprint_keys))

    def check(self, graph: Graph, ctx: "RuleContext") -> Iterator[Finding]:
        raise NotImplementedError


@dataclass
class RuleContext:
    """What a rule sees besides the graph: its options and the analyses it declared."""

    rule: type[Rule]
    options: Mapping[str, Any]
    graph: Graph
    _analysis: Callable[[str], Any] = field(repr=False)

    def analysis(self, name: str) -> Any:
        """Result of an analysis the rule declares (``"costs"``, ``"receptive_fields"``, ...), computed once.

        Raises
        ------
        RuleError
            The rule does not list ``name`` in its ``analyses``.
        """
        if name not in self.rule.analysis_names():
            raise RuleError(f"rule {self.rule.code} reads analysis {name!r} without declaring it: add it to "
                            f"the rule's `analyses`")
        return self._analysis(name)

    def finding(self, layer: str, message: str, *, fix: str | None = None,
                data: Mapping[str, Any] | None = None, severity: Severity | None = None,
                arguments: Mapping[str, Any] | None = None) -> Finding:
        """A finding of this rule at ``layer``, with code, severity and source lines filled in.

        ``arguments`` are constructor arguments that fix the flaw (``{"padding": 1}``): when
        the line that builds the layer is a direct constructor call archlint can read, the
        finding carries the edited call (:func:`archlint.edits.constructor_edit`).
        """
        node = self.graph.layer(layer)
        edit = None
        if arguments and node.defined_at is not None:
            from .edits import constructor_edit

            edit = constructor_edit(node, arguments, "set " + ", ".join(f"{k}={v!r}" for k, v in arguments.items()))
        rule = self.rule
        return frozen_record(Finding, {  # Finding(...) without the frozen dataclass's call per field
            "code": rule.code, "rule": rule.name, "severity": severity or rule.severity, "message": message,
            "layer": layer, "source": node.source, "fix": fix, "data": dict(data or {}),
            "defined_at": node.defined_at, "construction": node.construction, "edit": edit})
