"""JSON output: the versioned document of ``Report.to_dict()``; several models under ``reports``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..report import SCHEMA_VERSION, Report

__all__ = ["render_json"]


def render_json(reports: Sequence[Report], show_layers: bool = True) -> str:
    """One report as its document; several as ``{"schema_version", "reports": [...]}``."""
    if len(reports) == 1:
        return json.dumps(reports[0].to_dict(), indent=2) + "\n"
    return json.dumps({"schema_version": SCHEMA_VERSION, "reports": [r.to_dict() for r in reports]},
                      indent=2) + "\n"
