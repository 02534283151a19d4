"""Quick construction of frozen dataclass records (report rows, findings) from a dict of fields.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__``; for
records of many fields built once per layer, that is a visible share of a run on graphs
of tens of thousands of layers. :func:`frozen_record` fills the instance ``__dict__`` at
once instead, as attrs does for its frozen classes: a dict that names every field in
declaration order becomes the instance's ``__dict__`` itself (copying it would allocate a
second dict per record).
The result is the same object ``cls(**values)`` would give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

__all__ = ["frozen_record"]

T = TypeVar("T")

_Spec = tuple[dict[str, Any], dict[str, Callable[[], Any]], frozenset[str], frozenset[str], tuple[str, ...]]
# cls -> (default values, factories of fields with default_factory, required names, all names,
#         all names in declaration order)
_SPECS: dict[type, _Spec] = {}
# read once: a record is built per layer and per finding, and a global plus an attribute read per call shows
_new, _set_attribute = object.__new__, object.__setattr__


def _spec(cls: type) -> _Spec:
    if not is_dataclass(cls) or hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is not a plain dataclass without __post_init__ or slots")
    defaults, factories, required = {}, {}, set()
    for f in fields(cls):
        if f.default is not MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not MISSING:
            factories[f.name] = f.default_factory
        else:
            required.add(f.name)
    order = tuple(f.name for f in fields(cls))
    spec = _SPECS[cls] = (defaults, factories, frozenset(required), frozenset(order), order)
    return spec


def frozen_record(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls(**values)`` for a frozen dataclass, several times faster for records of many fields.

    Unknown or missing required fields raise ``TypeError`` exactly as ``cls(**values)`` does.
    A plain dict naming every field in declaration order becomes the record's ``__dict__``:
    pass a new dict and keep no reference to it (as with ``cls(**{...})`` written at the call).

    Examples
    --------
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Row:
    ...     name: str
    ...     size: int = 0
    ...     tags: list = field(default_factory=list)
    >>> frozen_record(Row, {"name": "conv1", "size": 3}) == Row("conv1", 3)
    True
    """
    spec = _SPECS.get(cls) or _spec(cls)
    # Every field given in declaration order (the usual case): one tuple comparison checks the
    # names, and the dict itself becomes the record's state.
    if len(values) == len(spec[4]) and type(values) is dict and tuple(values) == spec[4]:
        record = _new(cls)
        _set_attribute(record, "__dict__", values)
        return record
    defaults, factories, required, names, _ = spec
    keys = values.keys()
    if not required <= keys or not names >= keys:
        return cls(**values)  # raises the usual TypeError
    record = _new(cls)
    state = record.__dict__
    state.update(defaults)
    state.update(values)
    for name, factory in factories.items():
        if name not in keys:
            state[name] = factory()
    return record
