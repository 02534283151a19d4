"""Construction lines of the layers of a torch dynamo ONNX export or ``.pt2`` program, read from local source files.

The dynamo exporter records, per node, the module path of every enclosing module
(``pkg.torch.onnx.name_scopes``), their classes (``pkg.torch.onnx.class_hierarchy``, e.g.
``torchvision.models.resnet.BasicBlock``) and the stack trace of ``forward``. The
classes' source files are found among the files the stack traces name (mapped to the
working directory as call lines are, see :mod:`.sources`) or on ``sys.path``, and read,
never imported. :class:`~.construction.StaticResolver` then finds the line binding each
layer in its parent's class. A convolution fused with its BatchNorm carries the
BatchNorm's scope, so layers are resolved from their own module path (the weight
initializer's name), not from the node's scope.

A ``torch.export`` program records the same in each node's ``nn_module_stack`` and
``stack_trace``: :func:`traced_definitions` serves both.

Legacy (TorchScript-based) exports carry no classes and no stack traces: nothing can be
resolved, and :func:`onnx_definitions` says so in a note.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from ..graph import POOL_OPS, WEIGHTED_OPS, Op
from .construction import CONTAINERS, ClassRef, Definition, ModuleInfo, StaticResolver, class_def
from .sources import is_torch_internal, local_source, trace_files

__all__ = ["onnx_definitions", "traced_definitions", "metadata_list", "LEGACY_NOTE", "BARE_SEQUENTIAL_NOTE"]

LEGACY_NOTE = ("this export records no Python classes or stack traces (legacy exporter): findings have "
               "no construction line (defined_at); export with dynamo=True to get them")
BARE_SEQUENTIAL_NOTE = ("the model is a bare nn.Sequential: no class of its own holds the lines that build "
                        "its layers, so they have no construction line (defined_at); wrap it in an "
                        "nn.Module subclass, or lint it through a pkg.module:factory reference")

_ITEM = re.compile(r"'((?:[^'\\]|\\.)*)'")
_TORCH_CONTAINER = "torch.nn.modules.container."
#: Ops counted in ``ModuleInfo.builds`` (what a helper that builds "one layer" builds).
_BUILT = WEIGHTED_OPS | POOL_OPS | {Op.GLOBAL_POOL}


def metadata_list(text: str) -> list[str]:
    """The items of a list of strings as the dynamo exporter writes it in metadata (``"['', 'layer1']"``).

    Read with a pattern, never evaluated; the items keep their escapes.

    Examples
    --------
    >>> metadata_list("['', 'layer1', 'layer1.0']")
    ['', 'layer1', 'layer1.0']
    """
    return _ITEM.findall(text)


def onnx_definitions(metas: Sequence[Mapping[str, str]], paths: Sequence[str | None],
                     ops: Sequence[Op]) -> tuple[list[Definition | None], list[str]]:
    """Definitions of layers ``paths`` (module paths, ``None`` where unknown) and notes.

    ``metas`` are the ``metadata_props`` of all the model's nodes; ``ops`` the layers' ops.
    """
    classes: dict[str, str] = {}
    files: dict[str, None] = {}
    for meta in metas:
        hierarchy = meta.get("pkg.torch.onnx.class_hierarchy")
        scopes = meta.get("pkg.torch.onnx.name_scopes")
        if hierarchy and scopes:
            for scope, cls in zip(metadata_list(scopes), metadata_list(hierarchy)):
                classes.setdefault(scope, cls)
        trace = meta.get("pkg.torch.onnx.stack_trace")
        if trace:
            files.update(dict.fromkeys(trace_files(trace)))
    if not classes:
        return [None] * len(paths), [LEGACY_NOTE]
    return traced_definitions(classes, files, paths, ops)


def traced_definitions(classes: Mapping[str, str], files: Iterable[str], paths: Sequence[str | None],
                       ops: Sequence[Op]) -> tuple[list[Definition | None], list[str]]:
    """Definitions of layers ``paths`` from the class of each module path
    (``"layer1.0": "torchvision.models.resnet.BasicBlock"``, ``""`` for the model) and the
    source files the traces name; plus notes."""
    builds: Counter[str] = Counter()
    for path, op in zip(paths, ops):
        if path is not None and op in _BUILT:
            builds[""] += 1
            parts = path.split(".")
            for i in range(1, len(parts) + 1):
                builds[".".join(parts[:i])] += 1
    finder = _ClassFinder(tuple(f for f in dict.fromkeys(files) if not is_torch_internal(f)))

    def info(path: str) -> ModuleInfo | None:
        cls = classes.get(path)
        if cls is None:
            return None
        type_name = cls.rpartition(".")[2]
        container = cls.startswith(_TORCH_CONTAINER) and type_name in CONTAINERS
        found = None if cls.startswith("torch.") else finder.find(cls)
        return ModuleInfo(() if found is None else (found,), type_name, container, builds[path])

    resolver = StaticResolver(info)
    notes = []
    root = classes.get("")
    if root and root.startswith(_TORCH_CONTAINER):
        notes.append(BARE_SEQUENTIAL_NOTE)
    return [None if path is None else resolver.definition(path) for path in paths], notes


class _ClassFinder:
    """Source files of classes named ``package.module.Class``, among the traced files or on ``sys.path``."""

    def __init__(self, traced: tuple[str, ...]) -> None:
        self.traced = [local_source(f, 1).file for f in traced]
        self._found: dict[str, ClassRef | None] = {}

    def find(self, name: str) -> ClassRef | None:
        if name not in self._found:
            self._found[name] = self._search(name)
        return self._found[name]

    def _search(self, name: str) -> ClassRef | None:
        parts = name.split(".")
        for k in range(1, len(parts)):
            module, qualname = parts[:-k], ".".join(parts[-k:])
            for tail in ("/".join(module) + ".py", "/".join(module) + "/__init__.py"):
                for file in self.traced:
                    if file.replace("\\", "/").endswith("/" + tail) and class_def(file, qualname) is not None:
                        return ClassRef(file, qualname)
                file = _on_sys_path(tail, os.getcwd())
                if file is not None and class_def(file, qualname) is not None:
                    return ClassRef(file, qualname)
        for k in range(1, len(parts)):  # e.g. __main__.Net: the one traced file that defines it
            qualname = ".".join(parts[-k:])
            defining = [f for f in self.traced if class_def(f, qualname) is not None]
            if len(defining) == 1:
                return ClassRef(defining[0], qualname)
        return None


@lru_cache(maxsize=1024)
def _on_sys_path(tail: str, cwd: str) -> str | None:
    """The file ``tail`` (``pkg/module.py``) under the working directory or a ``sys.path`` folder."""
    for folder in (cwd, *sys.path):
        candidate = os.path.join(folder or os.curdir, tail)
        if os.path.isfile(candidate):
            return candidate
    return None
