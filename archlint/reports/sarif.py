"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF viewers.

One run for all models. Each rule that has findings is listed once in ``tool.driver.rules``
(id, name, descriptions and help from the rule descriptors the reports carry, default level;
no ``helpUri``, since the rule docs ship with the tool: ``archlint --explain CODE``);
results point to it by ``ruleId`` and ``ruleIndex``.

Locations: a finding is about a layer of a model file, and often also has Python lines:
where the layer is defined (``defined_at``, the line that constructs it or the small block
holding it) and where ``forward`` calls it (``source``). The primary (first) location is the
definition line when known, else the call line, because code scanning annotates only the
first location and the constructor call is what a reviewer changes; otherwise it is the
model file. The model file is always among the locations, with a logical location naming
the layer (kind ``module``, the PyTorch module path). The call line (when it differs from
the definition line) and the construction chain (innermost first) are ``relatedLocations``.
A finding with a suggested edit carries it as a ``fixes`` entry. ``partialFingerprints``
hash (model, code, layer), so an alert survives edits that move lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from ..graph import Source
from ..report import Finding, Report, RuleInfo, Severity
from .json_text import dumps
from .locations import base_folder, distinct_call, is_file, relative_path

__all__ = ["render_sarif", "SARIF_SCHEMA", "LEVELS"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
#: SARIF level of each severity.
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_BASE_ID = "%SRCROOT%"


def _artifact(path: str, base: str) -> dict:
    rel, inside = relative_path(path, base)
    if inside:
        return {"uri": quote(rel), "uriBaseId": _BASE_ID}
    return {"uri": Path(rel).as_uri()}


def _descriptor(code: str, finding: Finding, info: RuleInfo | None) -> dict:
    if info is not None:
        summary = info.summary
        body = "\n\n".join(f"{title}: {' '.join(text.split())}" for title, text in info.sections if text)
        markdown = "\n\n".join(f"## {title}\n{text}" for title, text in info.sections if text)
        name, level = info.name, LEVELS[info.severity]
    else:  # a report built without rule descriptors: what the finding says about its rule
        summary = body = markdown = finding.rule
        name, level = finding.rule, LEVELS[finding.severity]
    return {"id": code, "name": name,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": body or summary},
            "help": {"text": body or summary, "markdown": markdown or summary},
            "defaultConfiguration": {"level": level}}


def _fingerprint(model: str, finding: Finding) -> str:
    key = "\x1f".join((model, finding.code, finding.layer))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _python_location(source: Source | None, base: str, logical: list, text: str,
                     ident: int | None = None) -> dict | None:
    if source is None:
        return None
    physical = {"artifactLocation": _artifact(source.file, base), "region": {"startLine": source.line}}
    location = {"physicalLocation": physical, "logicalLocations": logical, "message": {"text": text}}
    return location if ident is None else {"id": ident, **location}


def _related(finding: Finding, base: str, logical: list) -> list[dict]:
    """The call line, then the construction chain, as SARIF related locations."""
    related = []
    call = distinct_call(finding.defined_at, finding.source)
    if call and finding.defined_at:  # else the call line is the primary location
        related.append(("forward calls layer " + finding.layer + " here", call))
    chain = finding.construction
    for k, line in enumerate(chain):
        related.append((f"construction of layer {finding.layer}, step {k + 1} of {len(chain)} "
                        "(innermost first)", line))
    out = []
    for text, source in related:
        location = _python_location(source, base, logical, text, len(out))
        if location is not None:
            out.append(location)
    return out


def _fix(finding: Finding, base: str) -> dict:
    edit = finding.edit
    region = {"startLine": edit.line, "startColumn": edit.column, "endLine": edit.end_line,
              "endColumn": edit.end_column}
    return {"description": {"text": edit.description},
            "artifactChanges": [{"artifactLocation": _artifact(edit.file, base),
                                 "replacements": [{"deletedRegion": region,
                                                   "insertedContent": {"text": edit.replacement}}]}]}


def _result(report: Report, finding: Finding, index: int, base: str) -> dict:
    model_uri = _artifact(report.model, base) if is_file(report.model) else None
    logical = [{"name": finding.layer.rsplit(".", 1)[-1], "fullyQualifiedName": finding.layer,
                "kind": "module"}]
    model_location = {"physicalLocation": {"artifactLocation": model_uri}} if model_uri else {}
    model_location |= {"logicalLocations": logical,
                      "message": {"text": f"layer {finding.layer} of {relative_path(report.model, base)[0]}"}}
    locations = [model_location]
    if finding.defined_at:
        primary = _python_location(finding.defined_at, base, logical,
                                   f"Python code that constructs layer {finding.layer}")
    else:
        primary = _python_location(finding.source, base, logical, f"Python code that calls layer {finding.layer}")
    if primary is not None:
        locations.insert(0, primary)
    text = finding.message + (f". Fix: {finding.fix}" if finding.fix else "")
    result = {"ruleId": finding.code, "ruleIndex": index, "level": LEVELS[finding.severity],
              "message": {"text": text},
              "locations": locations}
    related = _related(finding, base, logical)
    if related:
        result["relatedLocations"] = related
    if finding.edit is not None:
        result["fixes"] = [_fix(finding, base)]
    result |= {"partialFingerprints": {"archlint/v1": _fingerprint(relative_path(report.model, base)[0], finding)},
               "properties": {"model": report.model, "layer": finding.layer, "severity": finding.severity.value,
                              "fix": finding.fix, "data": finding.to_dict()["data"]}}
    return result


def render_sarif(reports: Sequence[Report], show_layers: bool = False, *, base: str | None = None) -> str:
    """A SARIF 2.1.0 log of all findings of ``reports``.

    Parameters
    ----------
    reports : sequence of Report
    show_layers : bool
        Ignored (SARIF has no layer table).
    base : str, optional
        Folder that artifact URIs are relative to (``%SRCROOT%``); default: the working directory.
    """
    base = base_folder(base)
    described = {info.code: info for report in reports for info in report.rules}
    first: dict[str, Finding] = {}
    for report in reports:
        for f in report.findings:
            first.setdefault(f.code, f)
    codes = sorted(first)
    index = {code: i for i, code in enumerate(codes)}
    version = next((r.tool_version for r in reports if r.tool_version), "")
    driver = {"name": "archlint", "rules": [_descriptor(c, first[c], described.get(c)) for c in codes]}
    if version:
        driver["version"] = driver["semanticVersion"] = version
    run = {"tool": {"driver": driver},
           "originalUriBaseIds": {_BASE_ID: {"uri": Path(base).as_uri().rstrip("/") + "/"}},
           "artifacts": [{"location": _artifact(r.model, base)} for r in reports if is_file(r.model)],
           "results": [_result(r, f, index[f.code], base) for r in reports for f in r.findings],
           "columnKind": "unicodeCodePoints"}
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return dumps(log, 4)  # one result per line
