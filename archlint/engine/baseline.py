"""Baselines: fingerprints of findings, and a JSON report of earlier findings that silences them.

A baseline is any JSON report archlint wrote (``--format json`` or ``--write-baseline``).
Each finding gets a fingerprint from what defines it, not from where the exporter put it:

- the rule code;
- the layer, by its PyTorch module path; layers named after a functional op
  (``layer1.0/Add``, ``Flatten``, ``Mixed_7c/Concat_2``) by their scope and canonical op
  (``layer1.0/add``, ``reshape``, ``Mixed_7c/concat``), since exporters number and name
  such nodes differently (legacy ``Flatten`` is dynamo's ``Reshape``);
- the rule's *defining* data keys (:data:`FINGERPRINT_KEYS`): values that say which flaw
  it is (a conv's kernel and channels), never limits from options nor measurements that
  move when unrelated parts of the model change (MACs, fractions, input sizes).

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

__all__ = ["FINGERPRINT_KEYS", "canonical_layer", "fingerprint", "Baseline", "load_baseline",
           "apply_baseline", "baseline_from_report"]

#: Rule code -> the ``data`` keys that define a finding besides code and layer. Rules not
#: listed (plugins) may declare a ``fingerprint_keys`` class attribute; else none are used.
#: Left out on purpose: ``limit`` (an option), MAC counts, fractions and sizes that depend on
#: the input size or on other layers.
FINGERPRINT_KEYS: dict[str, tuple[str, ...]] = {
    "AL101": ("first",),                        # the chain's start; its depth may grow
    "AL201": (),
    "AL202": (),
    "AL203": ("factor",),                       # the stride step itself
    "AL204": (),
    "AL301": ("kernel", "stride", "dilation"),  # the window that shrinks
    "AL302": (),
    "AL401": ("kernel", "in_channels", "out_channels"),  # the conv's definition
    "AL501": ("channels",),
    "AL502": ("kernel", "stride"),
    "AL503": (),
    "AL601": (), "AL602": (), "AL603": (), "AL604": (), "AL605": (),
}

_SUFFIX = re.compile(r"_\d+$")
_OP_CLASS = {"flatten": "reshape"}


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
        kind = _OP_CLASS.get(op, op) or last.lower()
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
                keys: Sequence[str] | None = None) -> str:
    """A 16-hex-digit fingerprint of a finding (see the module docstring).

    ``layers`` maps layer names to ``(op, source_op)`` so that op-named layers are
    canonicalized; ``keys`` overrides :data:`FINGERPRINT_KEYS`.

    Examples
    --------
    >>> a = fingerprint("AL401", "conv2", {"kernel": [3, 3], "in_channels": 24, "out_channels": 32, "macs": 1})
    >>> b = fingerprint("AL401", "conv2", {"kernel": [3, 3], "in_channels": 24, "out_channels": 32, "macs": 2})
    >>> a == b, len(a)
    (True, 16)
    """
    op, source_op = (layers or {}).get(layer, ("", ""))
    chosen = FINGERPRINT_KEYS.get(code, ()) if keys is None else tuple(keys)
    plain = json.loads(json.dumps({k: data[k] for k in chosen if k in data}, default=str))
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


def report_fingerprints(report: Report, rule_keys: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Fingerprint of each finding of ``report``, in order."""
    table = _layer_table(report.layers)
    return [fingerprint(f.code, f.layer, f.to_dict()["data"], table, (rule_keys or {}).get(f.code))
            for f in report.findings]


@dataclass(frozen=True)
class Baseline:
    """Findings accepted earlier: fingerprint counts, the findings themselves, and the model's totals."""

    file: str
    fingerprints: Counter
    findings: tuple[tuple[str, dict], ...]  # (fingerprint, finding as in the JSON report)
    macs: int | None = None
    params: int | None = None


def baseline_from_report(document: Mapping[str, Any], file: str = "<baseline>",
                         rule_keys: Mapping[str, Sequence[str]] | None = None) -> Baseline:
    """A :class:`Baseline` from one JSON report document (``Report.to_dict()``)."""
    findings = document.get("findings")
    if not isinstance(findings, list):
        raise ConfigError(f"--baseline {file}: not an archlint JSON report (no 'findings' list)")
    table = _layer_table(r for r in document.get("layers") or () if isinstance(r, Mapping))
    pairs = []
    for item in findings:
        if not isinstance(item, Mapping) or not isinstance(item.get("code"), str) or \
                not isinstance(item.get("layer"), str):
            raise ConfigError(f"--baseline {file}: a finding lacks 'code' or 'layer'")
        data = item.get("data") if isinstance(item.get("data"), Mapping) else {}
        pairs.append((fingerprint(item["code"], item["layer"], data, table,
                                  (rule_keys or {}).get(item["code"])), dict(item)))
    summary = document.get("summary") if isinstance(document.get("summary"), Mapping) else {}
    macs = summary.get("macs") if isinstance(summary.get("macs"), int) else None
    params = summary.get("params") if isinstance(summary.get("params"), int) else None
    return Baseline(file, Counter(fp for fp, _ in pairs), tuple(pairs), macs, params)


def load_baseline(path: str | Path, model: str | None = None,
                  rule_keys: Mapping[str, Sequence[str]] | None = None) -> Baseline:
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
    return baseline_from_report(document, str(file), rule_keys)


def apply_baseline(report: Report, baseline: Baseline,
                   rule_keys: Mapping[str, Sequence[str]] | None = None) -> Report:
    """``report`` without the findings ``baseline`` holds; baselined count and fixed ones in the summary.

    Baselined findings that no longer occur are listed as ``fixed`` in
    ``summary.baseline`` and named in a note.
    """
    remaining = Counter(baseline.fingerprints)
    kept: list[Finding] = []
    silenced = 0
    for finding, fp in zip(report.findings, report_fingerprints(report, rule_keys)):
        if remaining[fp] > 0:
            remaining[fp] -= 1
            silenced += 1
        else:
            kept.append(finding)
    fixed = []
    for fp, item in baseline.findings:
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
