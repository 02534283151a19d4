"""Construction lines of the modules of a live ``nn.Module``: observed while it is built, or read from its classes.

Two routes, the first more exact:

- :class:`ConstructionRecorder` observes construction: while archlint calls a
  ``pkg.module:factory`` it wraps ``nn.Module.__init__`` and keeps, per module, the Python
  frames that were building it (torch's own frames and the module's own ``__init__``
  left out, and so are the lines building the model as a whole, such as the factory's
  ``return Net()``). Each frame *call* counts the layers built under it, so a helper call
  that built a single layer is recognised as such (see :func:`.construction.pick`).
- :class:`LiveResolver` reads the classes' source files: the line binding each module to
  its parent (``self.conv1 = ...``, an ``nn.Sequential(...)`` argument, ``add_module``),
  through :class:`~.construction.StaticResolver`. Used for modules given through the API
  and for any module the recorder did not see being built.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections import Counter
from types import FrameType

from torch import nn

from .construction_onnx import BARE_SEQUENTIAL_NOTE
from .construction import ClassRef, Definition, ModuleInfo, Site, StaticResolver, definition
from .sources import is_torch_internal, local_source

__all__ = ["ConstructionRecorder", "LiveResolver", "BUILT_TYPES", "bare_container_note"]

#: Module types counted as "a layer built" (what a one-layer helper builds one of).
BUILT_TYPES = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
               nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
_CONTAINER_TYPES = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_ARCHLINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _skipped(file: str) -> bool:
    return is_torch_internal(file) or file.startswith(_ARCHLINT_DIR) or file.startswith("<")


class ConstructionRecorder:
    """Context manager that records the frames building every ``nn.Module`` created inside it.

    Examples
    --------
    >>> with ConstructionRecorder() as record:
    ...     model = nn.Sequential(nn.Conv2d(3, 8, 3))
    >>> record.saw(model[0])
    True
    """

    def __init__(self) -> None:
        #: id(module) -> (module, frames outermost first as (frame serial, file, line))
        self.stacks: dict[int, tuple[nn.Module, tuple[tuple[int, str, int], ...]]] = {}
        self._serials: dict[int, tuple[FrameType, int]] = {}
        self._original = None

    def __enter__(self) -> "ConstructionRecorder":
        original = self._original = nn.Module.__init__
        recorder = self

        def __init__(module, *args, **kwargs):
            recorder._record(module)
            return original(module, *args, **kwargs)

        __init__.__wrapped__ = original
        nn.Module.__init__ = __init__
        return self

    def __exit__(self, *exc) -> bool:
        nn.Module.__init__ = self._original
        self._serials.clear()  # release the frames (and their locals)
        return False

    def _record(self, module: nn.Module) -> None:
        if id(module) in self.stacks:
            return
        own = _init_codes(type(module))
        frame = sys._getframe(2)
        while frame is not None and (frame.f_code in own or _skipped(frame.f_code.co_filename)):
            frame = frame.f_back
        frames = []
        while frame is not None:
            file = frame.f_code.co_filename
            if not _skipped(file):
                known = self._serials.get(id(frame))
                if known is None or known[0] is not frame:
                    known = self._serials[id(frame)] = (frame, len(self._serials))
                frames.append((known[1], file, frame.f_lineno))
            frame = frame.f_back
        self.stacks[id(module)] = (module, tuple(reversed(frames)))

    def saw(self, module: nn.Module) -> bool:
        """Whether ``module`` was built while recording."""
        entry = self.stacks.get(id(module))
        return entry is not None and entry[0] is module


_INIT_CODES: dict[type, frozenset] = {}


def _init_codes(cls: type) -> frozenset:
    """Code objects of the ``__init__`` methods a module of class ``cls`` runs on itself."""
    codes = _INIT_CODES.get(cls)
    if codes is None:
        found = set()
        for base in cls.__mro__:
            init = base.__dict__.get("__init__")
            code = getattr(inspect.unwrap(init), "__code__", None) if init is not None else None
            if code is not None:
                found.add(code)
        codes = _INIT_CODES[cls] = frozenset(found)
    return codes


class LiveResolver:
    """Definitions of the module paths of ``root``, from a recording where there is one, else from source."""

    def __init__(self, root: nn.Module, record: ConstructionRecorder | None = None) -> None:
        self.modules = dict(root.named_modules(remove_duplicate=False))
        self.builds: Counter[str] = Counter()
        for path, module in self.modules.items():
            if isinstance(module, BUILT_TYPES):
                parts = path.split(".") if path else []
                for i in range(len(parts) + 1):
                    self.builds[".".join(parts[:i])] += 1
        self.static = StaticResolver(self._info)
        self.record = record if record is not None and record.stacks else None
        self._frame_builds: Counter[int] = Counter()
        #: frames (serial, line) that were building the model as a whole, e.g. the factory's
        #: ``return Net()``: outside the model's own code, they name no layer
        self._outside: frozenset = frozenset()
        if self.record is not None and self.record.saw(root):
            self._outside = frozenset((serial, line) for serial, _, line in self.record.stacks[id(root)][1])
        if self.record is not None:
            seen = set()
            for module in self.modules.values():
                if isinstance(module, BUILT_TYPES) and id(module) not in seen and self.record.saw(module):
                    seen.add(id(module))
                    for serial in {f[0] for f in self.record.stacks[id(module)][1]}:
                        self._frame_builds[serial] += 1
        self._cache: dict[str, Definition] = {}

    def definition(self, path: str) -> Definition:
        """Where the module at ``path`` is defined; empty when nothing is known."""
        found = self._cache.get(path)
        if found is None:
            found = self._cache[path] = self._resolve(path)
        return found

    def _resolve(self, path: str) -> Definition:
        module = self.modules.get(path)
        if module is not None and self.record is not None and self.record.saw(module):
            frames = self.record.stacks[id(module)][1]
            chain = [Site(local_source(file, line), self._frame_builds[serial])
                     for serial, file, line in reversed(frames) if (serial, line) not in self._outside]
            if chain:
                return definition(chain)
        return self.static.definition(path)

    def _info(self, path: str) -> ModuleInfo | None:
        module = self.modules.get(path)
        if module is None:
            return None
        cls = type(module)
        return ModuleInfo(_class_refs(cls), cls.__name__, cls in _CONTAINER_TYPES, self.builds[path])


_CLASS_REFS: dict[type, tuple[ClassRef, ...]] = {}


def _class_refs(cls: type) -> tuple[ClassRef, ...]:
    """Source locations of ``cls`` and its bases, torch's own classes left out."""
    refs = _CLASS_REFS.get(cls)
    if refs is None:
        found = []
        for base in cls.__mro__:
            if base is object or base.__module__.split(".")[0] == "torch":
                continue
            file = _class_file(base)
            if file and not is_torch_internal(file):
                found.append(ClassRef(file, base.__qualname__))
        refs = _CLASS_REFS[cls] = tuple(found)
    return refs


def _class_file(cls: type) -> str | None:
    """The file defining ``cls``: that of a function in its body (works for classes of modules
    loaded outside ``sys.modules``), else what :mod:`inspect` finds."""
    for value in vars(cls).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None:
            return code.co_filename
    try:
        return inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None


def bare_container_note(root: nn.Module, record: ConstructionRecorder | None) -> str | None:
    """The note for a model that is a bare ``nn.Sequential`` (no class of its own holds its lines),
    unless archlint watched it being built."""
    if type(root) in _CONTAINER_TYPES and (record is None or not record.saw(root)):
        return BARE_SEQUENTIAL_NOTE
    return None
