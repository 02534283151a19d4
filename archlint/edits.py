"""Suggested code edits: new constructor arguments written into the call that builds a layer.

A rule whose fix is a change of constructor arguments (``padding=1``, ``ceil_mode=True``)
passes them to ``ctx.finding(..., arguments=...)``. :func:`constructor_edit` turns them
into an :class:`~archlint.report.Edit` of the layer's ``defined_at`` line, or into nothing:
it never guesses. The line must hold exactly one direct call of the layer's torch class
(``nn.Conv2d(...)``, ``MaxPool2d(...)``), without ``*args``/``**kwargs``, whose window
arguments (kernel size, stride, padding, dilation) are literals equal to the layer's own,
so that the call demonstrably builds this layer with this configuration. The source file
is read (never imported) through the same once-per-file cache as construction lines.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from .frontends.construction import callee_name, source_text, source_tree
from .graph import Layer, Op
from .report import Edit

__all__ = ["constructor_edit"]

_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
         "padding_mode")
_MAX_POOL = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_AVG_POOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
#: Constructor names per op and their positional parameters.
_SIGNATURES = {
    Op.CONV: ({"Conv1d", "Conv2d", "Conv3d"}, _CONV),
    Op.MAX_POOL: ({"MaxPool1d", "MaxPool2d", "MaxPool3d"}, _MAX_POOL),
    Op.AVG_POOL: ({"AvgPool1d", "AvgPool2d", "AvgPool3d"}, _AVG_POOL),
}
_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1}


def constructor_edit(layer: Layer, arguments: Mapping[str, Any], description: str) -> Edit | None:
    """The edit setting ``arguments`` in the constructor call on ``layer.defined_at``, or ``None``.

    Examples
    --------
    >>> import tempfile, os
    >>> from archlint.graph import Source
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "net.py")
    >>> _ = open(path, "w").write("from torch import nn\\nconv = nn.Conv2d(16, 16, 3)\\n")
    >>> layer = Layer("conv", Op.CONV, "Conv", kernel=(3, 3), stride=(1, 1), pads_begin=(0, 0),
    ...               pads_end=(0, 0), dilation=(1, 1), defined_at=Source(path, 2))
    >>> edit = constructor_edit(layer, {"padding": 1}, "pad by 1")
    >>> edit.original, edit.replacement, (edit.line, edit.column, edit.end_column)
    ('nn.Conv2d(16, 16, 3)', 'nn.Conv2d(16, 16, 3, padding=1)', (2, 8, 28))
    """
    signature = _SIGNATURES.get(layer.op)
    where = layer.defined_at
    if signature is None or where is None or not arguments:
        return None
    names, params = signature
    tree, text = source_tree(where.file), source_text(where.file)
    if tree is None or text is None:
        return None
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == where.line
             and callee_name(n) in names]
    if len(calls) != 1:
        return None
    call = calls[0]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords) \
            or len(call.args) > len(params) or not _matches(call, params, layer):
        return None
    lines = text.splitlines(keepends=True)
    original = _segment(lines, call)
    if original is None:
        return None
    changes: list[tuple[int, int, str]] = []  # (start, end) offsets within ``original``, new text
    start = _offset(lines, call.lineno, call.col_offset)
    appended = []
    for name, value in arguments.items():
        node = _argument(call, params, name)
        if node is not None:
            a, b = _offset(lines, node.lineno, node.col_offset), _offset(lines, node.end_lineno, node.end_col_offset)
            changes.append((a - start, b - start, repr(value)))
        else:
            appended.append(f"{name}={value!r}")
    replacement = original
    for a, b, new in sorted(changes, reverse=True):
        replacement = replacement[:a] + new + replacement[b:]
    if appended:
        close = replacement.rstrip().rfind(")")
        body = replacement[:close].rstrip()
        sep = "" if body.endswith("(") else (" " if body.endswith(",") else ", ")
        replacement = body + sep + ", ".join(appended) + replacement[close:]
    if replacement == original:
        return None
    end_line = call.end_lineno
    return Edit(file=where.file, line=call.lineno, column=_column(lines, call.lineno, call.col_offset),
                end_line=end_line, end_column=_column(lines, end_line, call.end_col_offset),
                original=original, replacement=replacement, description=description)


def _argument(call: ast.Call, params: tuple[str, ...], name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    index = params.index(name) if name in params else len(params)
    return call.args[index] if index < len(call.args) else None


def _literal(node: ast.expr | None, default: Any) -> Any:
    if node is None:
        return default
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNREADABLE


_UNREADABLE = object()


def _per_axis(value: Any, axes: int) -> tuple | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,) * axes
    if isinstance(value, tuple) and len(value) == axes and all(isinstance(v, int) for v in value):
        return value
    return None


def _matches(call: ast.Call, params: tuple[str, ...], layer: Layer) -> bool:
    """Whether the call's window arguments are literals equal to the layer's."""
    axes = len(layer.kernel)
    kernel = _per_axis(_literal(_argument(call, params, "kernel_size"), None), axes)
    if kernel is None or kernel != tuple(layer.kernel):
        return False
    stride = _literal(_argument(call, params, "stride"), None)
    stride = kernel if stride is None and layer.op is not Op.CONV else (1 if stride is None else stride)
    padding = _literal(_argument(call, params, "padding"), 0)
    dilation = _literal(_argument(call, params, "dilation"), 1) if "dilation" in params else 1
    expected = ((stride, layer.stride), (padding, layer.pads_begin), (padding, layer.pads_end),
                (dilation, layer.dilation or (1,) * axes))
    return all(_per_axis(value, axes) == tuple(actual) for value, actual in expected)


def _offset(lines: list[str], line: int, byte_col: int) -> int:
    """Character offset in the text of (1-based line, UTF-8 byte column)."""
    return sum(len(x) for x in lines[:line - 1]) + len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8",
                                                                                                        "replace"))


def _column(lines: list[str], line: int, byte_col: int) -> int:
    """1-based column in Unicode code points of a UTF-8 byte column."""
    return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1


def _segment(lines: list[str], node: ast.expr) -> str | None:
    if node.end_lineno is None or node.end_lineno > len(lines):
        return None
    text = "".join(lines)
    return text[_offset(lines, node.lineno, node.col_offset):_offset(lines, node.end_lineno, node.end_col_offset)]
