"""Quick construction of frozen dataclass records (layers, report rows) from a dict of fields.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__``; for
records of many fields built once per layer, that is a visible share of a run on graphs
of tens of thousands of layers. :func:`frozen_record` fills the instance ``__dict__`` in
one update instead, as attrs does for its frozen classes. The result is the same object
``cls(**values)`` would give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

__all__ = ["frozen_record"]

T = TypeVar("T")

_Spec = tuple[dict[str, Any], dict[str, Callable[[], Any]], frozenset[str], frozenset[str]]
# cls -> (default values, factories of fields with default_factory, required names, all names)
_SPECS: dict[type, _Spec] = {}


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
    spec = _SPECS[cls] = (defaults, factories, frozenset(required), frozenset(f.name for f in fields(cls)))
    return spec


def frozen_record(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls(**values)`` for a frozen dataclass, several times faster for records of many fields.

    Unknown or missing required fields raise ``TypeError`` exactly as ``cls(**values)`` does.

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
    defaults, factories, required, names = _SPECS.get(cls) or _spec(cls)
    keys = values.keys()
    record = object.__new__(cls)
    state = record.__dict__
    if len(keys) == len(names) and names >= keys:  # every field given (the usual case): no defaults to fill
        state.update(values)
        return record
    if not required <= keys or not names >= keys:
        return cls(**values)  # raises the usual TypeError
    state.update(defaults)
    state.update(values)
    for name, factory in factories.items():
        if name not in keys:
            state[name] = factory()
    return record
