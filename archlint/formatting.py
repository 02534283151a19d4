"""How numbers and sizes print in messages and reports: one formatter for every renderer and rule.

Integers (and fractions that are whole) print exactly. Other values (receptive-field
paddings such as 90.5, strides below 1 after upsampling, resize ratios such as 1/3) print
with 4 significant digits, or one decimal from 1,000 up, so that the same value reads the
same in a finding's message, the text table, the Markdown and HTML reports and the diff.
Large counts (MACs, parameters, elements) print with an SI suffix and 4 significant digits
(:func:`si_count`), receptive fields as size, effective stride and padding (:func:`field_text`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from fractions import Fraction

__all__ = ["format_number", "format_dims", "si_count", "field_text"]

_SI_STEPS = ((10**3, "k"), (10**6, "M"), (10**9, "G"), (10**12, "T"))


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
    return _dims_text(values if type(values) is tuple else tuple(values))


@lru_cache(maxsize=4096)  # models repeat a few kernels, strides and shapes on layer after layer
def _dims_text(values: tuple[int | float | Fraction | None, ...]) -> str:
    # equal values print alike (2, 2.0 and Fraction(2) as "2"), so a cached answer for equal dims is right
    return "x".join(["?" if v is None else format_number(v) for v in values])


@lru_cache(maxsize=4096, typed=True)  # findings of repeated blocks print the same counts again and again
def si_count(value: int, sep: str = "") -> str:
    """A count with an SI suffix and 4 significant digits; ``sep`` goes between number and suffix.

    Findings write ``1.622M`` (the form a budget option takes), reports ``1.622 M``.

    Examples
    --------
    >>> si_count(1622336), si_count(5418), si_count(999), si_count(999_960), si_count(4 * 10**9, " ")
    ('1.622M', '5.418k', '999', '1M', '4 G')
    >>> si_count(-25_557_032, " "), si_count(3 * 10**16)
    ('-25.56 M', '30000T')
    """
    if abs(value) < _SI_STEPS[0][0]:
        return str(value)
    step = max(k for k, (factor, _) in enumerate(_SI_STEPS) if abs(value) >= factor)
    scaled = value / _SI_STEPS[step][0]
    if abs(float(f"{scaled:.4g}")) >= 1000 and step + 1 < len(_SI_STEPS):  # 999.96k rounds to 1M
        step += 1
        scaled = value / _SI_STEPS[step][0]
    text = f"{scaled:.4g}" if abs(scaled) < 1000 else f"{scaled:.0f}"
    return f"{text}{sep}{_SI_STEPS[step][1]}"


def field_text(size, stride=None, padding=None, is_global: bool = False) -> str:
    """A receptive field as reports print it: size, ``/`` effective stride, ``pad`` effective padding.

    Examples
    --------
    >>> field_text((427, 427), (32, 32), (Fraction(427, 2), 213.5)), field_text((224, 224), is_global=True)
    ('427x427 /32 pad 213.5', 'global (224x224)')
    """
    if size is None:
        return "?"
    text = format_dims(size)
    if is_global:
        return f"global ({text})"
    if stride is not None:
        text += " /" + (format_dims(stride) if len(set(stride)) > 1 else format_number(stride[0]))
    if padding is not None:
        text += " pad " + (format_dims(padding) if len(set(padding)) > 1 else format_number(padding[0]))
    return text
