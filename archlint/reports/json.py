"""JSON output: the versioned document of ``Report.to_dict()``; several models under ``reports``."""

from __future__ import annotations

from collections.abc import Sequence

from ..report import SCHEMA_VERSION, Report
from .json_text import dumps

__all__ = ["render_json"]


def render_json(reports: Sequence[Report], show_layers: bool = True) -> str:
    """One report as its document; several as ``{"schema_version", "reports": [...]}``.

    Summary fields, findings and layer rows are one per line (:mod:`.json_text`).
    """
    if len(reports) == 1:
        return dumps(reports[0].to_dict(), 2)
    return dumps({"schema_version": SCHEMA_VERSION, "reports": [r.to_dict() for r in reports]}, 4)
