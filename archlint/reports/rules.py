"""Rule documentation as text or JSON, for ``--list-rules`` and ``--explain`` (one source: the rule)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..rule import Rule

__all__ = ["rule_doc", "render_rule", "render_rule_list"]


def rule_doc(rule: type[Rule]) -> dict:
    """Everything documented about a rule, as plain data."""
    return {"code": rule.code, "name": rule.name, "severity": rule.severity.value,
            "summary": rule.summary(), "sections": rule.doc_sections(),
            "options": [{"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help}
                        for o in rule.options]}


def render_rule(rule: type[Rule], fmt: str = "text") -> str:
    """The full documentation of one rule."""
    doc = rule_doc(rule)
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    lines = [f"{rule.code} {rule.name} ({rule.severity.value})", "", doc["summary"], ""]
    for title, body in doc["sections"].items():
        if title == "Options":
            continue
        lines += [title, "-" * len(title), body, ""]
    if rule.options:
        lines += ["Options", "-------"]
        lines += [f"{o['name']} ({o['type']}, default {o['default']!r}): {o['help']}" for o in doc["options"]]
        lines.append("")
    return "\n".join(lines)


def render_rule_list(rules: Sequence[type[Rule]], fmt: str = "text") -> str:
    """One line per rule: code, name, default severity, summary."""
    if fmt == "json":
        return json.dumps([rule_doc(r) for r in rules], indent=2) + "\n"
    if not rules:
        return "no rules installed\n"
    width = max(len(r.name) for r in rules)
    return "".join(f"{r.code}  {r.name.ljust(width)}  {r.severity.value:<7}  {r.summary()}\n" for r in rules)
