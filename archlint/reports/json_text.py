"""JSON text of the machine formats: outer containers one member per line, records on one line each.

``json.dumps(..., indent=2)`` runs the pure-Python encoder: on a report of 10,000 layers it
costs several times the rest of the rendering. Here only the outer ``expand`` levels are
laid out by hand, one member per line; everything deeper (a layer row, a finding, a SARIF
result) goes through the C encoder in one line. The text is valid JSON and
``json.loads(dumps(doc, n)) == doc`` for every ``n``; keys and values are encoded exactly
as ``json.dumps`` encodes them (ASCII only).

Examples
--------
>>> print(dumps({"summary": {"macs": 3, "inputs": {"x": [1, 3]}}, "layers": [{"name": "a"}, {"name": "b"}]}, 2),
...       end="")
{
  "summary": {
    "macs": 3,
    "inputs": {"x": [1, 3]}
  },
  "layers": [
    {"name": "a"},
    {"name": "b"}
  ]
}
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps"]

_encode = json.JSONEncoder(check_circular=False).encode


def dumps(doc: Any, expand: int) -> str:
    """``doc`` as JSON text ending in a newline; containers less than ``expand`` levels deep are
    written one member per line, indented by two spaces per level."""
    out: list[str] = []
    _write(doc, expand, "", out)
    out.append("\n")
    return "".join(out)


def _write(value: Any, expand: int, indent: str, out: list[str]) -> None:
    if expand <= 0 or not value or not isinstance(value, (dict, list, tuple)):
        out.append(_encode(value))
        return
    inner = indent + "  "
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            # '{KEY: 0}' -> 'KEY: ', the key as json.dumps writes it (non-string keys converted alike)
            out.append(("\n" if i == 0 else ",\n") + inner + _encode({key: 0})[1:-2])
            _write(item, expand - 1, inner, out)
        out.append("\n" + indent + "}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            out.append(("\n" if i == 0 else ",\n") + inner)
            _write(item, expand - 1, inner, out)
        out.append("\n" + indent + "]")
