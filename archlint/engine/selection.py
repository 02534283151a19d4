"""Which rules a selector names (code, code prefix, rule name or ``ALL``), and which rules run.

:func:`specificity` is the one matching of a selector against a rule; ``select``/``ignore``
and the suppressions (per-node ignores, inline markers) all use it.

The most specific selector wins, as in ruff: ``select = ["XY2"]`` with
``ignore = ["XY201"]`` runs every XY2xx rule but XY201, and ``ignore = ["XY2"]`` with
``select = ["XY203"]`` runs XY203 alone of that family.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import ConfigError
from ..rule import Rule

__all__ = ["selected_rules", "specificity", "names_rule", "names_any"]


def specificity(selector: str, code: str, name: str) -> int:
    """How precisely ``selector`` names the rule ``code``/``name``: -1 not at all, higher is more specific.

    Examples
    --------
    >>> [specificity(s, "XY201", "skips-input") for s in ("ALL", "XY2", "xy20", "XY201", "skips-input", "XY3")]
    [0, 3, 4, 100, 100, -1]
    """
    if selector.upper() == "ALL":
        return 0
    if selector.upper() == code or selector == name:
        return 100
    if code.startswith(selector.upper()):
        return len(selector)
    return -1


def names_rule(selector: str, code: str, name: str) -> bool:
    """Whether ``selector`` names the rule ``code``/``name`` at all (``ALL`` names every rule)."""
    return specificity(selector, code, name) >= 0


def names_any(selector: str, rules: Iterable[type[Rule]]) -> bool:
    """Whether ``selector`` names at least one of ``rules``."""
    return any(names_rule(selector, r.code, r.name) for r in rules)


def _check_known(selectors: Sequence[str], rules: Sequence[type[Rule]], key: str) -> None:
    for s in selectors:
        if s.upper() != "ALL" and not names_any(s, rules):
            known = ", ".join(r.code for r in rules)
            raise ConfigError(f"{key}: {s!r} matches no rule code, prefix or name (rules: {known})")


def selected_rules(rules: Sequence[type[Rule]], select: Sequence[str],
                   ignore: Sequence[str]) -> list[type[Rule]]:
    """The rules enabled by ``select`` minus ``ignore``; unknown selectors are an error.

    Examples
    --------
    >>> from archlint.report import Severity
    >>> class A(Rule):
    ...     '''A. ## What it flags ## Why it matters ## Example ## Fix'''
    ...     code, name = "XY201", "a-rule"
    >>> class B(Rule):
    ...     '''B. ## What it flags ## Why it matters ## Example ## Fix'''
    ...     code, name = "XY202", "b-rule"
    >>> [r.code for r in selected_rules([A, B], ["XY2"], ["XY201"])]
    ['XY202']
    >>> [r.code for r in selected_rules([A, B], ["b-rule"], ["XY2"])]
    ['XY202']
    """
    _check_known(select, rules, "select")
    _check_known(ignore, rules, "ignore")
    enabled = []
    for rule in rules:
        chosen = max((specificity(s, rule.code, rule.name) for s in select), default=-1)
        dropped = max((specificity(s, rule.code, rule.name) for s in ignore), default=-1)
        if chosen >= 0 and chosen > dropped:
            enabled.append(rule)
    return enabled
