"""Suppressions: per-node-ignores globs from config, and inline ``archlint: ignore[...]`` markers.

A marker sits in the model itself (an ONNX node's ``doc_string`` or an ``archlint``
metadata entry): ``archlint: ignore`` silences every rule on that layer,
``archlint: ignore[XY101, XY2]`` the named codes and prefixes. Suppressions that silence
nothing are reported, so stale ones do not pile up.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..graph import Graph
from ..report import Finding
from ..rule import Rule
from .selection import names_any, names_rule

__all__ = ["Suppressions", "parse_marker"]

_MARKER = re.compile(r"archlint:\s*ignore(?:\[([^\]]*)\])?", re.IGNORECASE)


def parse_marker(text: str) -> tuple[str, ...] | None:
    """Codes named by an inline marker; ``("ALL",)`` for a bare one, ``None`` if there is none.

    Examples
    --------
    >>> parse_marker("archlint: ignore[XY101, XY2]")
    ('XY101', 'XY2')
    >>> parse_marker("legacy stem; archlint: ignore")
    ('ALL',)
    >>> parse_marker("nothing here") is None
    True
    """
    codes: list[str] = []
    found = False
    for match in _MARKER.finditer(text or ""):
        found = True
        if match.group(1) is None:
            return ("ALL",)
        codes.extend(c.strip() for c in match.group(1).split(",") if c.strip())
    return tuple(codes) if found else None


def _matches(selector: str, finding: Finding) -> bool:
    return names_rule(selector, finding.code, finding.rule)


@dataclass
class Suppressions:
    """Decides which findings are suppressed and remembers which suppressions were used."""

    per_node: Mapping[str, tuple[str, ...]]
    inline: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, graph: Graph, per_node: Mapping[str, Sequence[str]],
              rules: Iterable[type[Rule]]) -> "Suppressions":
        known = list(rules)
        for glob, codes in per_node.items():
            for code in codes:
                if code != "ALL" and not names_any(code, known):
                    raise ConfigError(f"per-node-ignores '{glob}': {code!r} matches no known rule")
        inline = {}
        for layer in graph.layers():
            codes = parse_marker(layer.comment) if layer.comment else None
            if codes is not None:
                inline[layer.name] = codes
        return cls({k: tuple(v) for k, v in per_node.items()}, inline)

    def __post_init__(self) -> None:
        self.used: set[tuple[str, str]] = set()

    def unsuppressed(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings no suppression silences, in their order."""
        if not self.per_node and not self.inline:
            return list(findings)  # nothing to match (the usual case): no test per finding
        return [f for f in findings if not self.suppressed(f)]

    def suppressed(self, finding: Finding) -> bool:
        hit = False
        for glob, codes in self.per_node.items():
            if fnmatch.fnmatchcase(finding.layer, glob):
                for code in codes:
                    if _matches(code, finding):
                        self.used.add((f"per-node-ignores '{glob}'", code))
                        hit = True
        for code in self.inline.get(finding.layer, ()):
            if _matches(code, finding):
                self.used.add((f"inline marker on '{finding.layer}'", code))
                hit = True
        return hit

    def unused(self, ran: Sequence[type[Rule]]) -> list[str]:
        """Suppressions of rules that ran but silenced nothing, one sentence each."""
        notes = []
        entries = [(f"per-node-ignores '{g}'", c) for g, cs in self.per_node.items() for c in cs]
        entries += [(f"inline marker on '{n}'", c) for n, cs in self.inline.items() for c in cs]
        for where, code in entries:
            if (where, code) not in self.used and names_any(code, ran):
                notes.append(f"unused suppression: {where} for {code} silenced nothing")
        return notes
