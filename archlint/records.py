"""Quick construction of frozen dataclass records (layers, report rows) from a dict of fields.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__``; for
records of many fields built once per layer, that is a visible share of a run on graphs
of tens of thousands of layers. :func:`frozen_record` fills the instance ``__dict__`` at
once instead, as attrs does for its frozen classes: a dict that names every field becomes
the instance's ``__dict__`` itself (copying it would allocate a second dict per record).
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
    A plain dict naming every field becomes the record's ``__dict__``: pass a new dict and
    keep no reference to it (as with ``cls(**{...})`` written at the call).

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
    defaults, factories, required, names, order = _SPECS.get(cls) or _spec(cls)
    keys = values.keys()
    record = object.__new__(cls)
    # every field given (the usual case): no defaults to fill. Fields listed in declaration order
    # are recognised by one tuple comparison, about a third of the cost of looking each name up.
    if len(keys) == len(names) and (tuple(keys) == order or names >= keys):
        object.__setattr__(record, "__dict__", values if type(values) is dict else dict(values))
        return record
    state = record.__dict__
    if not required <= keys or not names >= keys:
        return cls(**values)  # raises the usual TypeError
    state.update(defaults)
    state.update(values)
    for name, factory in factories.items():
        if name not in keys:
            state[name] = factory()
    return record
