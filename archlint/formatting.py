"""How numbers and sizes print in messages and reports: one formatter for every renderer and rule.

Integers (and fractions that are whole) print exactly. Other values (receptive-field
paddings such as 90.5, strides below 1 after upsampling, resize ratios such as 1/3) print
with 4 significant digits, or one decimal from 1,000 up, so that the same value reads the
same in a finding's message, the text table, the Markdown and HTML reports and the diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

__all__ = ["format_number", "format_dims"]


def format_number(value: int | float | Fraction) -> str:
    """``value`` as text: exact when whole, else 4 significant digits (one decimal from 1,000 up).

    Examples
    --------
    >>> [format_number(v) for v in (7, 2.0, Fraction(181, 2), Fraction(1, 3), Fraction(12345, 2), 0.015625)]
    ['7', '2', '90.5', '0.3333', '6172.5', '0.01562']
    """
    if isinstance(value, int) or (isinstance(value, Fraction) and value.denominator == 1):
        return str(int(value))
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return f"{number:.1f}" if abs(number) >= 1000 else f"{number:.4g}"


def format_dims(values: Iterable[int | float | Fraction | None]) -> str:
    """Sizes per axis joined by ``x`` (``?`` for an unknown one).

    Examples
    --------
    >>> format_dims((1, 3, 224, 224)), format_dims((Fraction(427, 2), 213.5)), format_dims((None, 7))
    ('1x3x224x224', '213.5x213.5', '?x7')
    """
    return "x".join("?" if v is None else format_number(v) for v in values)
