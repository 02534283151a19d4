"""Renderers: each turns Reports into a string, without I/O. ``RENDERERS`` maps format names to them.

Every renderer is called as ``render(reports, show_layers=...)``.
"""

from .github import render_github
from .html import render_html
from .json import render_json
from .markdown import render_markdown
from .sarif import render_sarif
from .text import render_text

__all__ = ["RENDERERS"]

RENDERERS = {"text": render_text, "json": render_json, "sarif": render_sarif, "github": render_github,
             "markdown": render_markdown, "html": render_html}
