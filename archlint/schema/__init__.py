"""JSON Schemas (draft 2020-12) of archlint's machine-readable output, shipped as package data.

``report-v1.schema.json`` describes ``--format json`` at ``schema_version`` 1 (see
``docs/json-schema.md``): one report object, or ``{"schema_version": 1, "reports": [...]}``
for several models. Objects allow extra keys, since fields are only ever added within a
schema version.
"""

from __future__ import annotations

import json
from importlib.resources import files

__all__ = ["schema_path", "load_schema"]


def schema_path(version: int = 1):
    """The schema file of report ``version`` (a :class:`importlib.resources` traversable)."""
    return files(__name__).joinpath(f"report-v{version}.schema.json")


def load_schema(version: int = 1) -> dict:
    """The parsed JSON Schema of report ``version``."""
    return json.loads(schema_path(version).read_text(encoding="utf-8"))
