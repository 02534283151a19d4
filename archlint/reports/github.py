"""GitHub Actions workflow commands: one ``::warning file=...,line=...,title=...::message`` per finding.

GitHub turns these log lines into annotations on the pull request. The file and line are
where the layer is defined (constructed: the line to edit) when known, else the line where
``forward`` calls it, else the model file; the message adds the call line when it differs
from the definition line. Severity maps to ``error``, ``warning`` and ``notice``. Escaping
follows GitHub's runner: ``%``, CR and LF in the message; additionally ``:`` and ``,`` in properties.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..report import Report, Severity
from .locations import base_folder, definition_and_call, distinct_call, is_file, relative_path

__all__ = ["render_github", "escape_data", "escape_property", "COMMANDS"]

#: Workflow command of each severity.
COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    """Escape a command's message (``%``, ``\\r``, ``\\n``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a command property value (as the message, plus ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(reports: Sequence[Report], show_layers: bool = False, *, base: str | None = None) -> str:
    """Workflow commands for every finding, then one plain summary line.

    ``base`` is the folder that file paths are made relative to (default: the working
    directory, which is the checkout in a GitHub workflow).
    """
    base = base_folder(base)
    lines = []
    total = 0
    for report in reports:
        model = relative_path(report.model, base)[0] if is_file(report.model) else report.model
        for f in report.findings:
            total += 1
            props = []
            where = f.defined_at or f.source
            if where is not None:
                props.append(f"file={escape_property(relative_path(where.file, base)[0])}")
                props.append(f"line={where.line}")
            elif is_file(report.model):
                props.append(f"file={escape_property(model)}")
            props.append(f"title={escape_property(f'{f.code} {f.rule}')}")
            # the annotation sits on the definition line; the message adds where forward calls it
            call = definition_and_call(None, distinct_call(f.defined_at, f.source), base) if f.defined_at else ""
            message = f"{f.message} (layer {f.layer} of {model}{'; ' + call if call else ''})"
            if f.fix:
                message += f"\nFix: {f.fix}"
            if f.edit is not None:
                message += f"\nSuggested edit: {f.edit.original} -> {f.edit.replacement}"
            lines.append(f"::{COMMANDS[f.severity]} {','.join(props)}::{escape_data(message)}")
    n = len(reports)
    lines.append(f"archlint: {total} finding{'s' if total != 1 else ''} in {n} model{'s' if n != 1 else ''}")
    return "\n".join(lines) + "\n"
