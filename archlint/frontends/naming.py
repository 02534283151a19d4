"""Layer names, one algorithm for both frontends (module paths, as the ONNX exporters name things).

A conv or linear whose weight is the parameter ``P.weight`` is named ``P``. A recurrent
layer (LSTM, GRU, RNN) is named by the module it runs in, which owns its weights
(``rnn.weight_ih_l0``): a stacked ``nn.LSTM`` called ``rnn`` gives ``rnn`` and ``rnn_1``
whether the ONNX file holds other ops in that scope (the exporters' Transpose and Reshape
of the output) or not. Otherwise a layer is named by the innermost module it runs in: the module path itself when that module
contains no other scope and all its layers have one op type (``layer1.0.relu``), else
``path/OpType`` with the ONNX op type (``layer1.0/Add``; ``Add`` at the root). Layers with no
known scope keep their node's name. Repeats get ``_1``, ``_2``... in graph order.

Everything runs once per graph, in time near-linear in the total length of the names:
hostile models carry module paths of hundreds of thousands of parts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["NameHint", "layer_names", "containers", "unique_names"]

#: ONNX op types of recurrent layers, named by their module.
_RECURRENT_TYPES = frozenset({"LSTM", "GRU", "RNN"})


class NameHint(NamedTuple):
    """What a frontend knows about a layer that names it."""

    scope: str | None  #: innermost module path ("" at the root, None when unknown)
    op_type: str  #: ONNX op type (``Conv``, ``Add``...)
    weight_module: str | None = None  #: ``P`` when the layer's weight is the parameter ``P.weight``
    node_name: str = ""  #: the node's own name, used when the scope is unknown


def layer_names(hints: Sequence[NameHint], reserved: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(unique name, origin) per layer, in order; origin is ``module``, ``scope`` or ``node``.

    Examples
    --------
    >>> layer_names([NameHint("layer1.0", "Conv", "layer1.0.conv1"), NameHint("layer1.0", "Add"),
    ...              NameHint("layer1.0.relu", "Relu"), NameHint("layer1.0.relu", "Relu"),
    ...              NameHint("", "Flatten"), NameHint(None, "Gemm", node_name="fc_node"),
    ...              NameHint("rnn", "LSTM"), NameHint("rnn", "LSTM"), NameHint("rnn", "Transpose")])  # doctest: +NORMALIZE_WHITESPACE
    [('layer1.0.conv1', 'module'), ('layer1.0/Add', 'scope'), ('layer1.0.relu', 'module'),
     ('layer1.0.relu_1', 'module'), ('Flatten', 'scope'), ('fc_node', 'node'),
     ('rnn', 'module'), ('rnn_1', 'module'), ('rnn/Transpose', 'scope')]
    """
    outer = containers(h.scope for h in hints)
    first_type: dict[str, str] = {}  # scope -> the op type of its first layer
    mixed: set[str] = set()  # scopes holding layers of several op types
    for h in hints:
        if h.scope is not None and first_type.setdefault(h.scope, h.op_type) != h.op_type:
            mixed.add(h.scope)
    raw: list[tuple[str, str]] = []
    for h in hints:
        if h.weight_module is not None:
            raw.append((h.weight_module, "module"))
        elif h.scope is None:
            raw.append((h.node_name or h.op_type, "node"))
        elif h.scope and h.op_type in _RECURRENT_TYPES:
            raw.append((h.scope, "module"))
        elif h.scope and h.scope not in outer and h.scope not in mixed:
            raw.append((h.scope, "module"))
        else:
            raw.append((f"{h.scope}/{h.op_type}" if h.scope else h.op_type, "scope"))
    names = unique_names([name for name, _ in raw], reserved=reserved)
    return [(name, origin) for name, (_, origin) in zip(names, raw)]


def containers(scopes: Iterable[str | None]) -> set[str]:
    """The scopes that contain another of ``scopes``, as ``layer1`` contains ``layer1.0.conv1``.

    Sorted by their dotted parts, the scopes that extend a scope come right after it, so
    comparing neighbours is enough.

    Examples
    --------
    >>> sorted(containers(["layer1", "layer1.0.conv1", "layer10", "layer1-b", "fc", None]))
    ['layer1']
    """
    distinct = {s for s in scopes if s}
    # ordered by dotted parts: as text with each dot made the smallest character (a faster key),
    # the same order unless a scope holds that character itself
    text_key = not any("\0" in s for s in distinct)
    ordered = sorted(distinct, key=(lambda s: s.replace(".", "\0")) if text_key else (lambda s: s.split(".")))
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
    seen = Counter(reserved)  # name -> the next suffix to try
    taken = set(seen) | set(names)
    out = []
    for name in names:
        if name not in seen:
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
