"""JSON text of the machine formats: outer containers one member per line, records on one line each.

Only the outer ``expand`` levels are laid out by hand, one member per line, ``"key": value``;
everything deeper (a layer row, a finding, a SARIF result) is one compact line written by
orjson, a compiled encoder several times faster than the standard library's: a report of
10,000 layers and 5,000 findings is 7 MB of text. The text is valid JSON, ASCII only (other
characters are ``\\u`` escapes, as ``json.dumps`` writes them), and
``json.loads(dumps(doc, n)) == doc`` for every ``n``, except that a float that is not finite
is ``null`` (JSON has no NaN or Infinity). What orjson does not take (an integer beyond 64
bits, a dict key that is not text, a string with a lone surrogate) is written by the
standard library's encoder in the same compact form.

Examples
--------
>>> print(dumps({"summary": {"macs": 3, "inputs": {"x": [1, 3]}}, "layers": [{"name": "a"}, {"name": "b"}]}, 2),
...       end="")
{
  "summary": {
    "macs": 3,
    "inputs": {"x":[1,3]}
  },
  "layers": [
    {"name":"a"},
    {"name":"b"}
  ]
}
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = ["dumps"]

_standard = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _encode(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _standard(_finite(value))


def _finite(value: Any) -> Any:
    """``value`` with its non-finite floats as ``None``, as orjson writes them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _escape(match: re.Match) -> str:
    """A non-ASCII character as JSON's ``\\u`` escape (a surrogate pair above U+FFFF)."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xd800 | code >> 10:04x}\\u{0xdc00 | code & 0x3ff:04x}"


def dumps(doc: Any, expand: int) -> str:
    """``doc`` as JSON text ending in a newline; containers less than ``expand`` levels deep are
    written one member per line, indented by two spaces per level."""
    out: list[str] = []
    _write(doc, expand, "", out)
    out.append("\n")
    text = "".join(out)
    # orjson writes UTF-8; characters outside ASCII occur only inside strings, where an escape means the same
    return text if text.isascii() else _NON_ASCII.sub(_escape, text)


def _write(value: Any, expand: int, indent: str, out: list[str]) -> None:
    if expand <= 0 or not value or not isinstance(value, (dict, list, tuple)):
        out.append(_encode(value))
        return
    inner = indent + "  "
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            # '{KEY:0}' -> 'KEY:', the key as the encoder writes it (non-string keys converted alike)
            out.append(("\n" if i == 0 else ",\n") + inner + _encode({key: 0})[1:-2] + " ")
            _write(item, expand - 1, inner, out)
        out.append("\n" + indent + "}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            out.append(("\n" if i == 0 else ",\n") + inner)
            _write(item, expand - 1, inner, out)
        out.append("\n" + indent + "]")
