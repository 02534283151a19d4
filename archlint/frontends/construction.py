"""Construction lines: where a layer, or the small block that holds it, is built in Python.

A finding is fixed where the layer is constructed (``nn.Conv2d(64, 192, 5, padding=2)``),
not where ``forward`` calls it. Frontends gather the candidate lines of a layer as a
*chain* of :class:`Site` objects, innermost first: the frames that were running when the
layer was constructed (observed while archlint builds the model itself), or, read from
the classes' source files, the line that binds the layer to its parent module
(``self.conv1 = ...``, an ``nn.Sequential(...)`` argument, ``self.add_module(...)``),
then the line that binds that parent to its own parent, and so on.

:func:`pick` chooses the line to edit from a chain. Lines in the user's own code win over
library code (site-packages); torch's own files are never chosen. A line inside a small
helper that builds one layer per call (``conv1x1``, a ConvBNAct wrapper, timm's
``ConvNormAct``) is passed over for the line that calls the helper: each site carries the
number of layers built by the code it belongs to, and the innermost site whose code
builds two or more layers is the one a person edits.

Source files are only read, never imported or run; each is read and parsed at most once
per process, and only when a line in it is needed.
"""

from __future__ import annotations

import ast
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib.util import decode_source
from typing import NamedTuple

from ..graph import Graph, Layer, Source
from .sources import is_torch_internal, local_source

__all__ = ["Site", "ClassRef", "ModuleInfo", "pick", "is_library_file", "class_def", "bindings",
           "StaticResolver", "Definition", "definition", "source_tree", "source_text", "callee_name",
           "layer_module", "annotate", "set_definitions", "new_model"]

#: Files larger than this are not parsed (a hostile model may name any file).
MAX_SOURCE_BYTES = 1_000_000
#: Most source files newly read for one model (files read before are cached and free).
MAX_SOURCE_FILES = 128
#: torch container classes: their children are bound by the code that builds the container.
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})


@dataclass(frozen=True)
class Site:
    """One candidate construction line and how many layers the code around it builds."""

    source: Source
    #: Layers (convolutions, dense layers, pooling windows) built by the call or module whose
    #: code holds this line; 1 for a helper that builds a single layer.
    builds: int


class Definition(NamedTuple):
    """The line to edit for a layer and the chain it was chosen from (innermost first)."""

    defined_at: Source | None
    chain: tuple[Source, ...]


_LIBRARY = ("site-packages", "dist-packages")


@lru_cache(maxsize=4096)
def is_library_file(path: str) -> bool:
    """Whether ``path`` is installed library code rather than the user's own (site-packages)."""
    parts = path.replace("\\", "/").split("/")
    return any(p in _LIBRARY for p in parts)


def pick(chain: Sequence[Site]) -> Source | None:
    """The line to edit from a chain of sites, innermost first (see the module docstring).

    Examples
    --------
    >>> helper = Site(Source("/home/u/net.py", 5), builds=1)    # self.conv = nn.Conv2d(...) in ConvBNAct
    >>> caller = Site(Source("/home/u/net.py", 21), builds=6)   # self.stem = ConvBNAct(3, 16, 3, 2)
    >>> str(pick([helper, caller]))
    '/home/u/net.py:21'
    """
    usable = [s for s in chain if not _is_torch(s.source.file)]
    user = [s for s in usable if not is_library_file(s.source.file)]
    candidates = user or usable
    for site in candidates:
        if site.builds >= 2:
            return site.source
    return candidates[0].source if candidates else None


@lru_cache(maxsize=4096)
def _is_torch(path: str) -> bool:
    return is_torch_internal(path)


def definition(chain: Sequence[Site]) -> Definition:
    """:class:`Definition` of a chain: the picked line and the distinct lines, innermost first."""
    lines = tuple(dict.fromkeys(s.source for s in chain if not _is_torch(s.source.file)))
    return Definition(pick(chain), lines)


# --- reading class sources ---------------------------------------------------------------

@lru_cache(maxsize=None)
def source_text(path: str) -> str | None:
    """The text of a Python file (read once per process), or ``None`` when it cannot be read.

    Only regular ``.py`` files up to ``MAX_SOURCE_BYTES`` are read, and at most
    ``MAX_SOURCE_FILES`` new ones per model (see :func:`new_model`): a model names files,
    and a hostile one could name a device, a huge file or thousands of files.
    """
    global _files_read
    if not path.endswith((".py", ".pyw")) or _files_read >= MAX_SOURCE_FILES:
        return None
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SOURCE_BYTES:
            return None
        _files_read += 1
        with open(path, "rb") as handle:
            return decode_source(handle.read(MAX_SOURCE_BYTES + 1))
    except (OSError, ValueError, MemoryError, UnicodeDecodeError, SyntaxError):
        return None


_files_read = 0


def new_model() -> None:
    """Start the file budget of another model (resolvers call it when they are created)."""
    global _files_read
    _files_read = 0


def _parse(text: str, path: str, first_line: int = 1) -> ast.Module | None:
    """Syntax tree of ``text``, its line numbers counted from ``first_line`` (blank lines
    in front cost the parser less than renumbering the tree)."""
    try:
        return ast.parse("\n" * (first_line - 1) + text, filename=path)
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        return None


@lru_cache(maxsize=None)
def source_tree(path: str) -> ast.Module | None:
    """The syntax tree of a whole Python file (parsed once per process), or ``None``."""
    text = source_text(path)
    return None if text is None else _parse(text, path)


@lru_cache(maxsize=1024)
def _top_level_class(path: str, name: str) -> ast.ClassDef | None:
    """A top-level class, parsed alone: a model file's other code is not parsed for it."""
    text = source_text(path)
    if text is None:
        return None
    starts = [m.start() for m in re.finditer(rf"^class[ \t]+{re.escape(name)}\b", text, re.MULTILINE)]
    if len(starts) != 1:
        return _find(source_tree(path), [name])
    end = re.compile(r"^(?=[^\s#)\]}])", re.MULTILINE).search(text, text.index("\n", starts[0]) + 1
                                                             if "\n" in text[starts[0]:] else len(text))
    segment = text[starts[0]:end.start() if end else len(text)]
    tree = _parse(segment, path, text.count("\n", 0, starts[0]) + 1)
    found = _find(tree, [name])
    return found if found is not None else _find(source_tree(path), [name])


_SCOPES = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@lru_cache(maxsize=1024)
def class_def(path: str, qualname: str) -> ast.ClassDef | None:
    """The class ``qualname`` defined in the file ``path``.

    Nested names follow Python's ``__qualname__``: ``Outer.Inner``, or
    ``build.<locals>.Net`` for a class defined inside the function ``build``.
    """
    parts = [p for p in qualname.split(".") if p != "<locals>"]
    if len(parts) == 1:
        return _top_level_class(path, parts[0])
    return _find(source_tree(path), parts)


def _find(tree: ast.Module | None, parts: list[str]) -> ast.ClassDef | None:
    if tree is None:
        return None
    body: Iterable[ast.stmt] = tree.body
    found = None
    for part in parts:
        found = next((n for n in body if isinstance(n, _SCOPES) and n.name == part), None)
        if found is None:
            return None
        body = found.body
    return found if isinstance(found, ast.ClassDef) else None


class Binding(NamedTuple):
    """``self.<name> = value`` (or ``add_module``/``setattr``) in a method of a class."""

    line: int
    value: ast.expr | None


def _self_attr(target: ast.expr) -> str | None:
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return target.attr
    return None


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Statements of a method body and of the blocks nested in it (not of nested functions)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        for name in ("body", "orelse", "finalbody"):
            block = getattr(stmt, name, None)
            if isinstance(block, list):
                yield from _statements(block)
        for handler in getattr(stmt, "handlers", ()):
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", ()):
            yield from _statements(case.body)


@lru_cache(maxsize=1024)
def _class_bindings(path: str, qualname: str) -> dict[str, list[Binding]]:
    node = class_def(path, qualname)
    found: dict[str, list[Binding]] = {}
    if node is None:
        return found
    for method in node.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) or method.name == "forward":
            continue
        for stmt in _statements(method.body):
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    for t in (target.elts if isinstance(target, ast.Tuple) else (target,)):
                        name = _self_attr(t)
                        if name is not None:
                            value = stmt.value if t is target and len(stmt.targets) == 1 else None
                            found.setdefault(name, []).append(Binding(stmt.lineno, value))
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                name = _self_attr(stmt.target)
                if name is not None:
                    found.setdefault(name, []).append(Binding(stmt.lineno, stmt.value))
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                func = call.func
                if isinstance(func, ast.Attribute) and func.attr in ("add_module", "register_module") \
                        and isinstance(func.value, ast.Name) and func.value.id == "self" and len(call.args) == 2 \
                        and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                    found.setdefault(call.args[0].value, []).append(Binding(stmt.lineno, call.args[1]))
    return found


def callee_name(value: ast.expr | None) -> str | None:
    """``Conv2d`` for ``nn.Conv2d(...)``, ``conv3x3`` for ``conv3x3(...)``; else ``None``."""
    if not isinstance(value, ast.Call):
        return None
    func = value.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def bindings(path: str, qualname: str, name: str, child_type: str | None = None) -> list[Binding]:
    """The lines of class ``qualname`` in ``path`` that bind attribute ``name``, best first.

    Bindings to ``None`` come last; a call of the child's own class (``child_type``) first.
    """
    found = _class_bindings(path, qualname).get(name, [])

    def rank(b: Binding) -> int:
        if isinstance(b.value, ast.Constant) and b.value.value is None:
            return 2
        return 0 if child_type and callee_name(b.value) == child_type else 1
    return sorted(found, key=rank)


def element(value: ast.expr | None, key: str) -> ast.expr | None:
    """The argument of a container call that becomes child ``key``.

    ``nn.Sequential(a, b)`` -> ``a`` for ``"0"``; ``nn.ModuleList([a, b])`` likewise;
    ``nn.ModuleDict({"k": a})`` -> ``a`` for ``"k"``. ``None`` where starred arguments or
    computed contents make the position unknowable.
    """
    name = callee_name(value)
    if name not in CONTAINERS or not isinstance(value, ast.Call):
        return None
    args = value.args
    if name == "Sequential":
        items = args
    elif len(args) == 1 and isinstance(args[0], (ast.List, ast.Tuple)):
        items = args[0].elts
    elif len(args) == 1 and isinstance(args[0], ast.Dict) and name == "ModuleDict":
        for k, v in zip(args[0].keys, args[0].values):
            if k is None:
                return None
            if isinstance(k, ast.Constant) and k.value == key:
                return v
        return None
    else:
        return None
    if any(isinstance(a, ast.Starred) for a in items) or not key.isdigit():
        return None
    index = int(key)
    return items[index] if index < len(items) else None


# --- static resolution over a module tree ------------------------------------------------

class ClassRef(NamedTuple):
    """Where a module's class is defined: source file and qualified name."""

    file: str
    qualname: str


class ModuleInfo(NamedTuple):
    """What static resolution needs to know about one module of the model."""

    #: Its class and the bases it inherits code from, where their source files are known
    #: (empty for torch's own classes).
    classes: tuple[ClassRef, ...]
    #: Class name (``Conv2d``, ``Sequential``, ``BasicBlock``).
    type_name: str
    #: A torch container (``Sequential``, ``ModuleList``, ``ModuleDict``) rather than a subclass.
    container: bool
    #: Layers built inside it (its own included).
    builds: int


class StaticResolver:
    """Construction chains of module paths, read from the source of their parents' classes.

    ``info(path)`` describes the module at ``path`` (``""`` is the model) or returns ``None``
    when the model does not know it.
    """

    def __init__(self, info: Callable[[str], ModuleInfo | None]) -> None:
        new_model()
        self.info = info
        self._chains: dict[str, tuple[Site, ...]] = {}

    def definition(self, path: str) -> Definition:
        """Where the module at ``path`` is defined (see :func:`pick`)."""
        return definition(self.chain(path))

    def chain(self, path: str) -> tuple[Site, ...]:
        """Sites binding ``path``, then its parent, and so on outwards."""
        if path in self._chains:
            return self._chains[path]
        if not path:
            return ()
        parent, _, name = path.rpartition(".")
        chain = self._own(parent, name, path) + self.chain(parent)
        self._chains[path] = chain
        return chain

    def _own(self, parent: str, name: str, path: str) -> tuple[Site, ...]:
        """The site binding child ``name`` of ``parent`` (empty when unknown)."""
        owner = self.info(parent)
        if owner is None:
            return ()
        child = self.info(path)
        child_type = child.type_name if child is not None else None
        if owner.container:
            # children of nn.Sequential(...) are its arguments, in the code that builds it
            grand, _, own_name = parent.rpartition(".")
            holder = self.info(grand) if parent else None
            if holder is None:
                return ()
            for cls in holder.classes:
                for b in bindings(*cls, own_name, owner.type_name):
                    arg = element(b.value, name)
                    if arg is not None:
                        return (Site(local_source(cls.file, arg.lineno), holder.builds),)
            return ()
        for cls in owner.classes:
            found = bindings(*cls, name, child_type)
            if found:
                return (Site(local_source(cls.file, found[0].line), owner.builds),)
        return ()


# --- attaching definitions to a built graph ----------------------------------------------

_REPEAT = re.compile(r"_\d+$")


def layer_module(layer: Layer, known: Callable[[str], bool]) -> str | None:
    """The module path a layer belongs to, from its name: the module itself (``layer1.0.conv1``,
    a repeated call ``relu_1``), or the scope of an op (``layer1.0/Add``); ``None`` if unknown."""
    if layer.name_origin == "module":
        for candidate in (layer.name, _REPEAT.sub("", layer.name)):
            if candidate and known(candidate):
                return candidate
    elif layer.name_origin == "scope" and "/" in layer.name:
        scope = layer.name.rpartition("/")[0]
        if scope and known(scope):
            return scope
    return None


def annotate(graph: Graph, known: Callable[[str], bool], definition_of: Callable[[str], Definition]) -> None:
    """Set ``defined_at`` and ``construction`` on the layers of ``graph`` in place, from the
    definition of the module each belongs to (see :func:`layer_module`)."""
    found = {}
    for name in graph.nodes:
        path = layer_module(graph.layer(name), known)
        if path is not None:
            found[name] = definition_of(path)
    set_definitions(graph, found)


def set_definitions(graph: Graph, found: dict[str, Definition | None]) -> None:
    """Replace the layers named in ``found`` by copies carrying their definition."""
    for name, definition_ in found.items():
        if definition_ is not None and definition_.chain:
            layer = graph.layer(name)
            graph.nodes[name]["layer"] = replace(layer, defined_at=definition_.defined_at,
                                                 construction=definition_.chain)
    graph.__dict__.pop("_layers", None)  # a frozen graph's cached layer list holds the old ones
