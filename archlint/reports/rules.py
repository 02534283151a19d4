"""Rule documentation as text or JSON, for ``--list-rules`` and ``--explain`` (one source: the rule).

The sections come from the rule's docstring; the options section is generated from its
``Option`` declarations (``Rule.describe()``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..rule import Rule

__all__ = ["rule_doc", "render_rule", "render_rule_list"]


def rule_doc(rule: type[Rule]) -> dict:
    """Everything documented about a rule, as plain data."""
    info = rule.describe()
    return {"code": info.code, "name": info.name, "severity": info.severity.value,
            "summary": info.summary, "sections": dict(info.sections), "options": list(info.options),
            "fingerprint_keys": list(info.fingerprint_keys)}


def render_rule(rule: type[Rule], fmt: str = "text") -> str:
    """The full documentation of one rule."""
    doc = rule_doc(rule)
    if fmt == "json":
        return json.dumps(doc, indent=2, default=str) + "\n"
    lines = [f"{rule.code} {rule.name} ({rule.severity.value})", "", doc["summary"], ""]
    for title, body in doc["sections"].items():
        lines += [title, "-" * len(title), body, ""]
    return "\n".join(lines)


def render_rule_list(rules: Sequence[type[Rule]], fmt: str = "text") -> str:
    """One line per rule: code, name, default severity, summary."""
    if fmt == "json":
        return json.dumps([rule_doc(r) for r in rules], indent=2, default=str) + "\n"
    if not rules:
        return "no rules installed\n"
    width = max(len(r.name) for r in rules)
    return "".join(f"{r.code}  {r.name.ljust(width)}  {r.severity.value:<7}  {r.summary()}\n" for r in rules)
