"""Layer names the frontends share: module scopes that contain other scopes, and unique names.

Both run once per graph, in time near-linear in the total length of the names: hostile
models carry module paths of hundreds of thousands of parts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["containers", "unique_names"]


def containers(scopes: Iterable[str | None]) -> set[str]:
    """The scopes that contain another of ``scopes``, as ``layer1`` contains ``layer1.0.conv1``.

    Sorted by their dotted parts, the scopes that extend a scope come right after it, so
    comparing neighbours is enough.

    Examples
    --------
    >>> sorted(containers(["layer1", "layer1.0.conv1", "layer10", "layer1-b", "fc", None]))
    ['layer1']
    """
    ordered = sorted({s for s in scopes if s}, key=lambda s: s.split("."))
    return {a for a, b in zip(ordered, ordered[1:]) if b.startswith(a) and b.startswith(".", len(a))}


def unique_names(names: Sequence[str], reserved: Iterable[str] = ()) -> list[str]:
    """``names`` made unique: later repeats get ``_1``, ``_2``... as the legacy ONNX exporter does.

    Names in ``reserved`` (graph inputs) count as taken; a suffixed name never collides
    with another name of the list.

    Examples
    --------
    >>> unique_names(["conv", "relu", "relu", "relu_1", "relu"], reserved=["x"])
    ['conv', 'relu', 'relu_2', 'relu_1', 'relu_3']
    """
    seen = Counter(reserved)
    taken = set(seen) | set(names)
    out = []
    for name in names:
        if seen[name] == 0:
            seen[name] = 1
            out.append(name)
            continue
        k = seen[name]
        while f"{name}_{k}" in taken:
            k += 1
        seen[name] = k + 1
        unique = f"{name}_{k}"
        taken.add(unique)
        out.append(unique)
    return out
