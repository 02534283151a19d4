"""Test oracle: which Python lines really construct or bind each module, recorded while a model is built.

Independent of archlint's own resolution: ``nn.Module.__init__``, ``__setattr__`` and
``add_module`` are wrapped, and at each call the whole Python stack is kept. The lines of a
module are those of every frame running when it was constructed or bound to a parent,
minus the frames outside the model's construction (the caller of the factory, pytest).
A ``defined_at`` is right when it is one of the lines of the layer or of a module holding it.
"""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict

from torch import nn


def _stack(skip: int, module: nn.Module | None = None) -> list[tuple[int, str, int, bool]]:
    """(frame id, real file path, line, whether the frame runs a method of ``module``), innermost first."""
    frame = sys._getframe(skip)
    found = []
    while frame is not None:
        own = module is not None and frame.f_locals.get("self") is module
        found.append((id(frame), os.path.realpath(frame.f_code.co_filename), frame.f_lineno, own))
        frame = frame.f_back
    return found


class ConstructionLog:
    """``with ConstructionLog() as log: model = build()``, then ``log.lines(model)``."""

    def __init__(self) -> None:
        self.stacks: dict[int, list[list[tuple[int, str, int, bool]]]] = defaultdict(list)
        self.keep: list[nn.Module] = []  # keeps ids unique while recording

    def __enter__(self) -> "ConstructionLog":
        self._saved = (nn.Module.__init__, nn.Module.__setattr__, nn.Module.add_module)
        init, setattr_, add_module = self._saved
        log = self

        def wrapped_init(module, *args, **kwargs):
            log.keep.append(module)
            log.stacks[id(module)].append(_stack(2, module))
            return init(module, *args, **kwargs)

        def wrapped_setattr(module, name, value):
            if isinstance(value, nn.Module):
                log.stacks[id(value)].append(_stack(2))
            return setattr_(module, name, value)

        def wrapped_add_module(module, name, child):
            if isinstance(child, nn.Module):
                log.stacks[id(child)].append(_stack(2))
            return add_module(module, name, child)

        nn.Module.__init__, nn.Module.__setattr__, nn.Module.add_module = \
            wrapped_init, wrapped_setattr, wrapped_add_module
        return self

    def __exit__(self, *exc) -> bool:
        nn.Module.__init__, nn.Module.__setattr__, nn.Module.add_module = self._saved
        return False

    def lines(self, root: nn.Module) -> dict[str, set[tuple[str, int]]]:
        """Module path -> the (real path, line) pairs that construct or bind it or a module holding it."""
        # frames running when the model's own construction began, its own __init__ excepted
        outside = {fid for fid, _, _, is_root in self.stacks[id(root)][0] if not is_root}
        own: dict[str, set[tuple[str, int]]] = {}
        for path, module in root.named_modules(remove_duplicate=False):
            own[path] = {(f, line) for stack in self.stacks.get(id(module), ()) for fid, f, line, _ in stack
                         if fid not in outside}
        held = {}
        for path in own:
            parts = path.split(".") if path else []
            held[path] = set().union(*(own.get(".".join(parts[:i]), set()) for i in range(len(parts) + 1)))
        self.keep.clear()
        return held


_SUFFIX = re.compile(r"_\d+$")


def module_of(layer: str, paths) -> str | None:
    """The module path a layer name refers to: itself, its scope (``block/Add``), or its name
    without a repeat suffix (``relu_1``)."""
    for candidate in (layer, layer.partition("/")[0] if "/" in layer else None, _SUFFIX.sub("", layer)):
        if candidate is not None and candidate in paths:
            return candidate
    return None


def is_construction_line(defined_at, layer: str, lines: dict[str, set[tuple[str, int]]]) -> bool:
    """Whether ``defined_at`` (a ``Source`` or ``"file:line"``) constructs or binds the module of
    ``layer`` or one holding it."""
    path = module_of(layer, lines)
    if path is None:
        return False
    file, _, line = str(defined_at).rpartition(":")
    return (os.path.realpath(file), int(line)) in lines[path]
