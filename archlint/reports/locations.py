"""Locations of findings and layers as the renderers show them: model files and Python lines.

A finding has up to two Python lines: where the layer is defined (constructed, the line
to edit) and where ``forward`` calls it. Renderers show the definition first, the call
beside it where it is another line (:func:`distinct_call`), each with its path relative to
the base folder (the working directory) when the file lies under it, else absolute.
"""

from __future__ import annotations

import os
from pathlib import PurePath

from ..graph import Source

__all__ = ["base_folder", "relative_path", "is_file", "shown", "distinct_call", "shown_locations", "definition_and_call"]


def base_folder(base: str | None) -> str:
    """The absolute folder that paths are shown relative to: ``base``, by default the working directory."""
    return os.path.abspath(base or os.getcwd())


def relative_path(path: str, base: str) -> tuple[str, bool]:
    """``path`` as a POSIX path relative to ``base`` and whether it lies inside ``base``."""
    full = os.path.abspath(os.path.join(base, path))
    try:
        rel = os.path.relpath(full, base)
    except ValueError:  # another drive on Windows
        return PurePath(full).as_posix(), False
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return PurePath(full).as_posix(), False
    return PurePath(rel).as_posix(), True


def is_file(model: str) -> bool:
    """Whether a report's ``model`` names a file (in-memory models read ``<onnx.ModelProto ...>``)."""
    return bool(model) and not model.startswith("<")


def shown(source: Source | None, base: str) -> str:
    """``file:line`` with the file relative to ``base`` when inside it; ``""`` for no source.

    Examples
    --------
    >>> shown(Source("/repo/models/net.py", 12), "/repo"), shown(Source("/usr/lib/x.py", 3), "/repo")
    ('models/net.py:12', '/usr/lib/x.py:3')
    >>> shown(None, "/repo")
    ''
    """
    if source is None:
        return ""
    return f"{relative_path(source.file, base)[0]}:{source.line}"


def distinct_call(defined_at: Source | None, source: Source | None) -> Source | None:
    """The call line ``source`` when it is worth showing: ``None`` when it is the definition line.

    Examples
    --------
    >>> distinct_call(Source("net.py", 12), Source("net.py", 12)) is None
    True
    >>> distinct_call(Source("net.py", 12), Source("net.py", 40))
    Source(file='net.py', line=40)
    """
    return source if source != defined_at else None


def shown_locations(defined_at: Source | None, source: Source | None, base: str) -> tuple[str, str]:
    """The definition line and the call line to show beside it; ``""`` for a part not shown.

    The call line is shown only when it differs from the definition line.

    Examples
    --------
    >>> shown_locations(Source("/repo/net.py", 12), Source("/repo/net.py", 12), "/repo")
    ('net.py:12', '')
    """
    return shown(defined_at, base), shown(distinct_call(defined_at, source), base)


def definition_and_call(defined_at: Source | None, source: Source | None, base: str) -> str:
    """``defined at net.py:12, called at net.py:40`` (either part left out when unknown).

    Examples
    --------
    >>> definition_and_call(Source("/repo/net.py", 12), Source("/repo/net.py", 40), "/repo")
    'defined at net.py:12, called at net.py:40'
    >>> definition_and_call(None, Source("/repo/net.py", 40), "/repo")
    'called at net.py:40'
    """
    defined, call = shown_locations(defined_at, source, base)
    parts = [f"defined at {defined}"] if defined else []
    if call:
        parts.append(f"called at {call}")
    return ", ".join(parts)
