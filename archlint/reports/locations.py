"""Python locations of findings and layers as the renderers show them.

A finding has up to two Python lines: where the layer is defined (constructed, the line
to edit) and where ``forward`` calls it. Renderers show the definition first, the call
beside it, each with its path relative to the base folder (the working directory) when
the file lies under it, else absolute.
"""

from __future__ import annotations

from .sarif import relative_path, split_source

__all__ = ["shown", "definition_and_call"]


def shown(source: str | None, base: str) -> str:
    """``file:line`` with the file relative to ``base`` when inside it; ``""`` for no source.

    Examples
    --------
    >>> shown("/repo/models/net.py:12", "/repo"), shown("/usr/lib/x.py:3", "/repo"), shown(None, "/repo")
    ('models/net.py:12', '/usr/lib/x.py:3', '')
    """
    where = split_source(source)
    if where is None:
        return ""
    path = relative_path(where[0], base)[0]
    return f"{path}:{where[1]}" if where[1] is not None else path


def definition_and_call(defined_at: str | None, source: str | None, base: str) -> str:
    """``defined at net.py:12, called at net.py:40`` (either part left out when unknown).

    Examples
    --------
    >>> definition_and_call("/repo/net.py:12", "/repo/net.py:40", "/repo")
    'defined at net.py:12, called at net.py:40'
    >>> definition_and_call(None, "/repo/net.py:40", "/repo")
    'called at net.py:40'
    """
    parts = []
    if defined_at:
        parts.append(f"defined at {shown(defined_at, base)}")
    if source and source != defined_at:
        parts.append(f"called at {shown(source, base)}")
    return ", ".join(parts)
