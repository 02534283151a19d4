"""Renderers: each turns Reports into a string, without I/O. ``RENDERERS`` maps format names to them.

Every renderer is called as ``render(reports, show_layers=...)``. Renderer modules are
imported on first use, so a text run does not pay for the HTML or SARIF code. Renderers run
with the cyclic garbage collector paused (:mod:`archlint.gc_pause`): a report of 10,000 layers
builds tens of thousands of dicts, and each full collection would walk the whole graph again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import import_module

from ..gc_pause import gc_paused

__all__ = ["RENDERERS"]


class _Renderers(Mapping):
    """Format name -> renderer function, importing each renderer module when first asked for."""

    _WHERE = {"text": "text", "json": "json", "sarif": "sarif", "github": "github",
              "markdown": "markdown", "html": "html"}

    def __getitem__(self, fmt: str) -> Callable[..., str]:
        module = import_module(f"{__name__}.{self._WHERE[fmt]}")
        return gc_paused(getattr(module, f"render_{fmt}"))

    def __iter__(self) -> Iterator[str]:
        return iter(self._WHERE)

    def __len__(self) -> int:
        return len(self._WHERE)


RENDERERS: Mapping[str, Callable[..., str]] = _Renderers()
