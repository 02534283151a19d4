"""Baselines: fingerprints of findings, and a JSON report of earlier findings that silences them.

A baseline is any JSON report archlint wrote (``--format json`` or ``--write-baseline``).
Each finding gets a fingerprint from what defines it, not from where the exporter put it:

- the rule code;
- the layer, by its PyTorch module path; layers named after a functional op
  (``layer1.0/Add``, ``Flatten``, ``Mixed_7c/Concat_2``) by their scope and canonical op
  (``layer1.0/add``, ``reshape``, ``Mixed_7c/concat``), since exporters number and name
  such nodes differently (legacy ``Flatten`` is dynamo's ``Reshape``);
- the rule's *defining* data keys, which each rule declares as ``fingerprint_keys`` and
  the report carries in its rule descriptors: values that say which flaw it is (a conv's
  kernel and channels), never limits from options nor measurements that move when
  unrelated parts of the model change (MACs, fractions, input sizes).

Matching counts: a baseline holding a fingerprint twice silences two findings with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..report import Finding, Report

__all__ = ["op_class", "canonical_layer", "fingerprint", "report_fingerprints", "fingerprint_keys", "Baseline",
           "load_baseline", "apply_baseline", "baseline_from_report"]

_SUFFIX = re.compile(r"_\d+$")
_OP_CLASS = {"flatten": "reshape"}


def op_class(op: str) -> str:
    """The canonical op ``op`` stands for across exporters: the legacy exporter's ``flatten`` is dynamo's ``reshape``."""
    return _OP_CLASS.get(op, op)


def canonical_layer(name: str, op: str = "", source_op: str = "") -> str:
    """The layer's name with exporter-specific op naming removed.

    A layer named after its op (``SCOPE/OpType`` or ``OpType``, optionally with a ``_N``
    suffix) becomes ``SCOPE/op`` with archlint's canonical op; module paths stay as they are.

    Examples
    --------
    >>> canonical_layer("Flatten", "flatten", "Flatten"), canonical_layer("Reshape", "reshape", "Reshape")
    ('reshape', 'reshape')
    >>> canonical_layer("Mixed_7c/Concat_2", "concat", "Concat")
    'Mixed_7c/concat'
    >>> canonical_layer("layer1.0.conv1", "conv", "Conv")
    'layer1.0.conv1'
    """
    scope, _, last = name.rpartition("/")
    if source_op and _SUFFIX.sub("", last) == source_op.rpartition("::")[2]:
        kind = op_class(op) or last.lower()
        return f"{scope}/{kind}" if scope else kind
    return name


def _canonical_value(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    return value


def fingerprint(code: str, layer: str, data: Mapping[str, Any], layers: Mapping[str, tuple[str, str]] | None = None,
                keys: Sequence[str] = ()) -> str:
    """A 16-hex-digit fingerprint of a finding (see the module docstring).

    ``layers`` maps layer names to ``(op, source_op)`` so that op-named layers are
    canonicalized; ``keys`` are the rule's ``fingerprint_keys``.

    Examples
    --------
    >>> keys = ("kernel", "in_channels", "out_channels")
    >>> conv = {"kernel": [3, 3], "in_channels": 24, "out_channels": 32}
    >>> a = fingerprint("XY101", "conv2", {**conv, "macs": 1}, keys=keys)
    >>> b = fingerprint("XY101", "conv2", {**conv, "macs": 2}, keys=keys)        # a measurement moved
    >>> c = fingerprint("XY101", "conv2", {**conv, "kernel": [5, 5]}, keys=keys)  # another conv
    >>> a == b, a == c, len(a)
    (True, False, 16)
    """
    op, source_op = (layers or {}).get(layer, ("", ""))
    plain = json.loads(json.dumps({k: data[k] for k in keys if k in data}, default=str))
    text = json.dumps([code, canonical_layer(layer, op, source_op), _canonical_value(plain)], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _layer_table(rows: Iterable[Any]) -> dict[str, tuple[str, str]]:
    table = {}
    for row in rows:
        if isinstance(row, Mapping):
            table[str(row.get("name"))] = (str(row.get("op") or ""), str(row.get("source_op") or ""))
        else:
            table[row.name] = (row.op, row.source_op)
    return table


def fingerprint_keys(*reports: Report) -> dict[str, tuple[str, ...]]:
    """Rule code -> ``fingerprint_keys``, from the rule descriptors the reports carry."""
    return {rule.code: rule.fingerprint_keys for report in reports for rule in report.rules}


def report_fingerprints(report: Report) -> list[str]:
    """Fingerprint of each finding of ``report``, in order."""
    table, keys = _layer_table(report.layers), fingerprint_keys(report)
    return [fingerprint(f.code, f.layer, f.to_dict()["data"], table, keys.get(f.code, ()))
            for f in report.findings]


@dataclass(frozen=True)
class Baseline:
    """Findings accepted earlier, as the JSON report holds them, with its layer table and summary."""

    file: str
    findings: tuple[dict, ...]
    layers: Mapping[str, tuple[str, str]]
    summary: Mapping[str, Any]

    def fingerprints(self, keys: Mapping[str, Sequence[str]]) -> list[str]:
        """Fingerprint of each finding, with ``keys`` (rule code -> ``fingerprint_keys``) of the rules now."""
        return [fingerprint(item["code"], item["layer"], item.get("data") if isinstance(item.get("data"), Mapping)
                            else {}, self.layers, keys.get(item["code"], ())) for item in self.findings]


def baseline_from_report(document: Mapping[str, Any], file: str = "<baseline>") -> Baseline:
    """A :class:`Baseline` from one JSON report document (``Report.to_dict()``)."""
    findings = document.get("findings")
    if not isinstance(findings, list):
        raise ConfigError(f"--baseline {file}: not an archlint JSON report (no 'findings' list)")
    for item in findings:
        if not isinstance(item, Mapping) or not isinstance(item.get("code"), str) or \
                not isinstance(item.get("layer"), str):
            raise ConfigError(f"--baseline {file}: a finding lacks 'code' or 'layer'")
    table = _layer_table(r for r in document.get("layers") or () if isinstance(r, Mapping))
    summary = document.get("summary") if isinstance(document.get("summary"), Mapping) else {}
    return Baseline(file, tuple(dict(item) for item in findings), table, dict(summary))


def load_baseline(path: str | Path, model: str | None = None) -> Baseline:
    """Read a baseline file: a JSON report, or a multi-model one (the report of ``model``, or the only one).

    Raises
    ------
    ConfigError
        The file is missing, not JSON, or not an archlint report.
    """
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--baseline {file}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--baseline {file}: not a JSON report ({' '.join(str(exc).split())})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"--baseline {file}: not an archlint JSON report")
    if "reports" in document and isinstance(document["reports"], list):
        reports = [r for r in document["reports"] if isinstance(r, dict)]
        chosen = [r for r in reports if model is not None and r.get("model") == model]
        if not chosen and len(reports) == 1:
            chosen = reports
        if not chosen:
            raise ConfigError(f"--baseline {file}: holds {len(reports)} reports, none for {model}")
        document = chosen[0]
    return baseline_from_report(document, str(file))


def apply_baseline(report: Report, baseline: Baseline) -> Report:
    """``report`` without the findings ``baseline`` holds; baselined count and fixed ones in the summary.

    Baselined findings that no longer occur are listed as ``fixed`` in
    ``summary.baseline`` and named in a note.
    """
    accepted = baseline.fingerprints(fingerprint_keys(report))
    remaining = Counter(accepted)
    kept: list[Finding] = []
    silenced = 0
    for finding, fp in zip(report.findings, report_fingerprints(report)):
        if remaining[fp] > 0:
            remaining[fp] -= 1
            silenced += 1
        else:
            kept.append(finding)
    fixed = []
    for fp, item in zip(accepted, baseline.findings):
        if remaining[fp] > 0:
            remaining[fp] -= 1
            fixed.append({k: item.get(k) for k in ("code", "rule", "severity", "layer", "message")})
    notes = list(report.summary.notes)
    notes.append(f"baseline {baseline.file}: {silenced} finding(s) baselined, {len(kept)} new, "
                 f"{len(fixed)} fixed")
    notes.extend(f"fixed since the baseline: {f['code']} at {f['layer']}" for f in fixed)
    summary = replace(report.summary, notes=tuple(notes),
                      baseline={"file": baseline.file, "baselined": silenced, "new": len(kept), "fixed": fixed})
    return replace(report, summary=summary, findings=tuple(kept))
