"""Renderers: each turns Reports into a string, without I/O. ``RENDERERS`` maps format names to them."""

from .json import render_json
from .text import render_text

__all__ = ["RENDERERS"]

RENDERERS = {"text": render_text, "json": render_json}
