"""Einsum as a matrix product: the contracted width that makes its MACs ``numel(out) * K``."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["einsum_contraction"]


def einsum_contraction(equation: str, shapes: Sequence[Sequence[int] | None]) -> int | None:
    """Product of the sizes of the summed-over indices of a two-operand einsum.

    A two-operand einsum does one multiply-accumulate per output element and per
    combination of contracted indices, so its MACs are ``numel(output) * K`` with this
    ``K``, like a matrix product's inner dimension. ``None`` where that does not hold or
    cannot be read (one or three operands, ellipsis, unknown shapes, mismatched sizes).

    Examples
    --------
    >>> einsum_contraction("bhid,bhjd->bhij", [(1, 8, 49, 32), (1, 8, 49, 32)])
    32
    >>> einsum_contraction("ij,jk", [(3, 4), (4, 5)])
    4
    """
    equation = equation.replace(" ", "")
    if "..." in equation or len(shapes) != 2 or any(s is None for s in shapes):
        return None
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != 2:
        return None
    if not arrow:  # implicit output: indices that appear once, in alphabetical order
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape):
            return None
        for letter, size in zip(term, shape):
            if sizes.setdefault(letter, int(size)) != int(size) and 1 not in (sizes[letter], int(size)):
                return None
            sizes[letter] = max(sizes[letter], int(size))
    return math.prod(size for letter, size in sizes.items() if letter not in output)
