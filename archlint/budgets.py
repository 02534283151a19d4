"""Budget-style rules: limit types written as counts or shares, and the model-wide check budgets share.

A budget is a rule option that stays off (``None``) until the user sets a limit, and a
measurement of the whole model compared with it. :class:`Count` (``4.5G``, ``30M``,
``512k``; ``Ki``/``Mi``/``Gi`` are powers of 1024) and :class:`Ratio` (``0.05`` or ``5%``)
are the option types; :class:`ModelBudget` is the base class of rules that give one
finding, on the model's first output (:func:`model_anchor`), when a measurement exceeds
its limit. Built-in budgets and plugins use it the same way, through ``archlint.api``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, ClassVar

from .errors import RuleError
from .graph import Graph
from .report import Finding, Severity
from .rule import Rule, RuleContext

__all__ = ["Count", "Ratio", "ModelBudget", "model_anchor"]

_SI = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
       "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_COUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([kKMGT]i?)?\s*$")


def _no_limit(value: Any, expected: str) -> bool:
    """Whether a limit option's ``value`` means no limit (``None``, ``"none"`` or empty); a bool is refused."""
    if value is None or str(value).strip().lower() in ("none", ""):
        return True
    if isinstance(value, bool):
        raise ValueError(f"expected {expected}, got {value!r}")
    return False


class Count(int):
    """A non-negative count written with an optional SI suffix (an option type: ``N`` on the command line).

    Examples
    --------
    >>> Count("4.5G"), Count("30M"), Count("512k"), Count("1Mi"), Count(1200)
    (4500000000, 30000000, 512000, 1048576, 1200)
    >>> Count("none") is None  # no limit
    True
    >>> Count("lots")
    Traceback (most recent call last):
    ...
    ValueError: expected a count like 4.5G, 30M or 1200, got 'lots'
    """

    metavar = "N"
    expected = "a count like 4.5G, 30M or 1200"

    def __new__(cls, value):
        if _no_limit(value, cls.expected):
            return None
        if isinstance(value, (int, float)):
            number = Fraction(value)
        else:
            match = _COUNT.match(str(value))
            if not match:
                raise ValueError(f"expected {cls.expected}, got {value!r}")
            digits, exponent, suffix = match.groups()
            number = Fraction(digits) * Fraction(10) ** int(exponent or 0) * _SI[suffix or ""]
        if number < 0 or number.denominator != 1:
            raise ValueError(f"expected a whole non-negative count, got {value!r}")
        return super().__new__(cls, int(number))


class Ratio(float):
    """A ratio written as a number (``0.05``) or a percentage (``5%``) (an option type: ``SHARE``).

    Examples
    --------
    >>> Ratio("5%"), Ratio("0.5"), Ratio(1)
    (0.05, 0.5, 1.0)
    >>> Ratio("five")
    Traceback (most recent call last):
    ...
    ValueError: expected a ratio like 0.05 or 5%, got 'five'
    """

    metavar = "SHARE"
    expected = "a ratio like 0.05 or 5%"

    def __new__(cls, value):
        if _no_limit(value, cls.expected):
            return None
        text = str(value).strip()
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            number = float(text) * scale
        except ValueError:
            raise ValueError(f"expected {cls.expected}, got {value!r}") from None
        if not number >= 0 or number == float("inf"):
            raise ValueError(f"expected a non-negative ratio, got {value!r}")
        return super().__new__(cls, number)


def model_anchor(graph: Graph) -> str:
    """The layer model-wide findings sit on: the first graph output."""
    outputs = list(graph.graph.get("outputs", ()))
    return outputs[0] if outputs else graph.order()[-1]


class ModelBudget(Rule):
    """Base class of rules that hold a whole-model measurement under a limit the user sets.

    A subclass names in ``limit_option`` its option holding the limit (default ``None``:
    the budget is off until set), implements :meth:`measure` and :meth:`over_budget`, and
    may override :meth:`allowed`. The shared ``check`` reads the limit, measures only when
    it is set, and yields ``over_budget``'s finding when the measurement exceeds what is
    allowed. Budgets are errors unless the subclass says otherwise.
    """

    abstract = True
    severity = Severity.ERROR
    limit_option: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("abstract", False) and \
                getattr(cls, "limit_option", None) not in {opt.name for opt in cls.options}:
            raise RuleError(f"budget rule {cls.code}: limit_option {getattr(cls, 'limit_option', None)!r} "
                            "is not one of its options")

    def allowed(self, limit: Any, ctx: RuleContext) -> float | None:
        """Largest measurement that passes; ``None`` turns the check off (default: the limit itself)."""
        return limit

    def measure(self, graph: Graph, ctx: RuleContext) -> int | float:
        """The model-wide measurement compared with the limit."""
        raise NotImplementedError

    def over_budget(self, graph: Graph, ctx: RuleContext, value: int | float, limit: Any) -> Finding:
        """The finding for a measurement ``value`` over the budget (usually at ``model_anchor(graph)``)."""
        raise NotImplementedError

    def check(self, graph: Graph, ctx: RuleContext) -> Iterator[Finding]:
        limit = ctx.options[self.limit_option]
        allowed = None if limit is None else self.allowed(limit, ctx)
        if allowed is None:
            return
        value = self.measure(graph, ctx)
        if value > allowed:
            yield self.over_budget(graph, ctx, value, limit)
