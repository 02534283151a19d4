"""Rule options: qualified names, deprecated flat aliases, reference values, type checks.

Users name an option by its rule, as ``RULE.option``, where ``RULE`` is the rule's code
(any case, since setup.cfg lowercases keys) or its name: ``XY101.max-plain-depth`` and
``deep-chain-without-skip.max-plain-depth`` are the same option. In TOML the dotted key
is a table, so ``[tool.archlint.XY101]`` with ``max-plain-depth = 10`` works too.

An unqualified name (``max-plain-depth``) is a deprecated alias: it still sets the one
option declared with that name or alias, and the report notes how to write it; a name that
several rules declare must be qualified. Later settings win (command line over file).
Options declared with a ``reference`` field take that field of the reference report's
summary (``archlint diff`` BASE, ``--baseline``) unless the user sets them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..rule import Option, Rule

__all__ = ["rule_options", "option_owner"]


def _find_rule(rules: Sequence[type[Rule]], qualifier: str) -> type[Rule] | None:
    for rule in rules:
        if qualifier.upper() == rule.code or qualifier == rule.name:
            return rule
    return None


def option_owner(rules: Sequence[type[Rule]], key: str) -> list[tuple[type[Rule], Option]]:
    """The (rule, option) pairs a user-written option name sets: one if qualified, any number if not.

    Raises
    ------
    ConfigError
        A qualified name whose rule or option does not exist.
    """
    qualifier, dot, name = key.partition(".")
    if dot:
        rule = _find_rule(rules, qualifier)
        if rule is None:
            raise ConfigError(f"option {key}: no rule has the code or name {qualifier!r}")
        for opt in rule.options:
            if opt.name == name:
                return [(rule, opt)]
        known = ", ".join(o.name for o in rule.options) or "none"
        raise ConfigError(f"option {key}: rule {rule.code} has no option {name!r} (its options: {known})")
    return [(rule, opt) for rule in rules for opt in rule.options if key in (opt.name, *opt.aliases)]


def rule_options(rules: Sequence[type[Rule]], given: Mapping[str, Any],
                 reference: Mapping[str, Any] | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Options per rule code (defaults, then reference values, then ``given`` in order) and deprecation notes.

    Examples
    --------
    >>> class R(Rule):
    ...     '''R. ## What it flags ## Why it matters ## Example ## Fix'''
    ...     code, name = "XY101", "r-rule"
    ...     options = (Option("max-depth", int, 3, "Deepest allowed.", aliases=("max-r-depth",)),)
    >>> rule_options([R], {"xy101.max-depth": "5"})
    ({'XY101': {'max-depth': 5}}, [])
    >>> values, notes = rule_options([R], {"max-r-depth": 4})
    >>> values, notes[0].split(" (")[0]
    ({'XY101': {'max-depth': 4}}, "option 'max-r-depth' is deprecated: write 'XY101.max-depth'")
    """
    values = {rule.code: {opt.name: opt.default for opt in rule.options} for rule in rules}
    for rule in rules:
        for opt in rule.options:
            if opt.reference and reference and reference.get(opt.reference) is not None:
                values[rule.code][opt.name] = _parsed(rule, opt, reference[opt.reference], opt.name)
    notes: list[str] = []
    unknown: list[str] = []
    for key, raw in given.items():
        owners = option_owner(rules, key)
        if not owners:
            unknown.append(key)
            continue
        if "." not in key:
            if len(owners) > 1:
                choices = " or ".join(f"{r.code}.{o.name}" for r, o in owners)
                raise ConfigError(f"option {key} is declared by several rules: write {choices}")
            rule, opt = owners[0]
            notes.append(f"option '{key}' is deprecated: write '{rule.code}.{opt.name}' (unqualified option "
                         "names go away in the next release)")
        for rule, opt in owners:
            values[rule.code][opt.name] = _parsed(rule, opt, raw, key)
    if unknown:
        known = ", ".join(f"{r.code}.{o.name}" for r in rules for o in r.options) or "none"
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} (known: {known})")
    return values, notes


def _parsed(rule: type[Rule], opt: Option, raw: Any, key: str) -> Any:
    try:
        return opt.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"option {key} ({rule.code}): {exc}") from None
