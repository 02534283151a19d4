"""Rule-case runner: YAML files of (model, options, expected findings) cases, public for plugins.

A case file holds ``rule: CODE`` and named cases::

    rule: XY101
    plain_chain_fails:
      model: plain_chain_12            # fixture name in the models folder
      findings:
        - layer: features.11
          data: {depth: 12, limit: 8}  # listed keys must match exactly; others are ignored
    raised_limit_passes:
      model: plain_chain_12
      options: {XY101.max-plain-depth: 12}
      findings: []
    node_suppressed:
      model: plain_chain_12
      config: {per-node-ignores: {"features.*": [XY101]}}
      findings: []

A fixture name resolves to ``NAME.onnx`` or, for models exported from PyTorch, to both
``NAME_legacy.onnx`` and ``NAME_dynamo.onnx``: the case must hold for each variant
(``variants: [legacy]`` restricts it). Only the rule under test runs; findings match on
layer and the listed ``data`` keys, in any order, and nothing else may be found.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RuleCase", "load_cases", "case_models", "run_case"]


@dataclass(frozen=True)
class RuleCase:
    """One named case of a rule-case file."""

    rule: str
    name: str
    model: str
    findings: tuple[Mapping[str, Any], ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    input_shape: Any = None
    variants: tuple[str, ...] | None = None
    skip: str | None = None


def load_cases(path: str | Path) -> list[RuleCase]:
    """Parse one YAML case file."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "rule" not in data:
        raise ValueError(f"{path}: a case file is a mapping with a 'rule' key")
    rule = str(data["rule"])
    cases = []
    for name, body in data.items():
        if name == "rule":
            continue
        unknown = set(body) - {"model", "findings", "options", "config", "input_shape", "variants", "skip"}
        if unknown or "model" not in body or "findings" not in body:
            raise ValueError(f"{path}: case {name}: needs model and findings; unknown keys {sorted(unknown)}")
        cases.append(RuleCase(rule, str(name), str(body["model"]), tuple(body["findings"] or ()),
                              body.get("options") or {}, body.get("config") or {}, body.get("input_shape"),
                              tuple(body["variants"]) if body.get("variants") else None, body.get("skip")))
    return cases


def case_models(case: RuleCase, models_dir: str | Path) -> Iterator[tuple[str, Path]]:
    """(variant, path) pairs the case runs on."""
    folder = Path(models_dir)
    single = folder / f"{case.model}.onnx"
    if single.exists():
        yield "onnx", single
        return
    found = False
    for variant in ("legacy", "dynamo"):
        path = folder / f"{case.model}_{variant}.onnx"
        if path.exists() and (case.variants is None or variant in case.variants):
            found = True
            yield variant, path
    if not found:
        raise FileNotFoundError(f"case {case.rule}-{case.name}: no model {case.model} in {folder}")


def _config(case: RuleCase):
    from .engine.config import Config, config_from_mapping, parse_input_shapes

    base = config_from_mapping(dict(case.config), f"case {case.rule}-{case.name}") if case.config else Config()
    shapes = parse_input_shapes(case.input_shape) if case.input_shape else None
    return base.override(select=(case.rule,), ignore=(), options=dict(case.options), input_shapes=shapes)


def _matches(expected: Mapping[str, Any], finding) -> bool:
    if "layer" in expected and expected["layer"] != finding.layer:
        return False
    if "severity" in expected and expected["severity"] != finding.severity.value:
        return False
    if "message_contains" in expected and expected["message_contains"] not in finding.message:
        return False
    data = finding.to_dict()["data"]
    for key, value in (expected.get("data") or {}).items():
        if key not in data:
            return False
        got = data[key]
        if isinstance(value, float) or isinstance(got, float):
            if not isinstance(got, (int, float)) or abs(got - value) > 1e-6 * max(1.0, abs(value)):
                return False
        elif got != value:
            return False
    return True


def run_case(case: RuleCase, path: str | Path) -> None:
    """Run the case on one model file; raise ``AssertionError`` describing any mismatch."""
    from .engine.run import lint

    report = lint(str(path), _config(case))
    found = [f for f in report.findings if f.code == case.rule]
    others = [f for f in report.findings if f.code != case.rule]
    assert not others, f"rules other than {case.rule} ran: {[f.code for f in others]}"
    remaining = list(found)
    missing = []
    for expected in case.findings:
        hit = next((f for f in remaining if _matches(expected, f)), None)
        if hit is None:
            missing.append(expected)
        else:
            remaining.remove(hit)
    lines = []
    if missing:
        lines.append("expected but not found: " + "; ".join(map(str, missing)))
    if remaining:
        lines.append("found but not expected: " + "; ".join(
            f"{f.layer}: {f.message} {f.to_dict()['data']}" for f in remaining))
    assert not lines, f"{case.rule}-{case.name} on {Path(path).name}:\n" + "\n".join(lines)
