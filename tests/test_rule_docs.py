"""Every discovered rule's documentation is complete and its Example really fails.

Convention checked here (pylint's "docs that cannot rot", bad and good examples): the
``## Example`` section names its fixture models as ``Fixture `NAME` `` (a backticked name
right after the word "fixture", any case). ``NAME`` resolves as in :mod:`archlint.testing`:
``fixtures/models/NAME.onnx``, or ``NAME_legacy.onnx`` and ``NAME_dynamo.onnx`` for models
exported from PyTorch. A fixture whose sentence (from the name to the next ". ") says
"passes", "no finding" or "stays silent" is a good example: running only that rule, with
default options, on every variant gives no finding. Every other named fixture is a bad
example and gives at least one finding; each Example names at least one bad example.
Options are documented once, by their ``Option`` declarations: no docstring has a hand-typed
``## Options`` section, and ``--explain`` shows one generated bullet per declared option
(qualified name, type, default, help).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archlint.api import Config, lint
from archlint.engine.registry import discover_rules
from archlint.reports.rules import render_rule
from archlint.rule import DOC_SECTIONS

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
FIXTURE_REF = re.compile(r"\bfixture\s+`([A-Za-z0-9_.-]+)`", re.IGNORECASE)
PASSES = re.compile(r"\b(passes|no findings?|stays silent)\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"\.(\s|$)")
OPTION_BULLET = re.compile(r"^[-*]\s+`([A-Z]+[0-9]{3})\.([a-z0-9-]+)` \((\w+), default ([^)]*)\): ",
                           re.MULTILINE)
#: ``with `AL601.max-macs = "1.5M"` `` in a fixture's sentence: options the example runs with
#: (rules that are off by default, such as budgets, need one to give a finding).
EXAMPLE_OPTION = re.compile(r"`([A-Za-z0-9.-]+)\s*=\s*([^`]+)`")


def example_options(example: str, name: str) -> dict[str, str]:
    """Options set in the sentence of ``example`` that names fixture ``name``."""
    for match in FIXTURE_REF.finditer(example):
        if match.group(1) == name:
            end = SENTENCE_END.search(example, match.end())
            sentence = example[match.start():end.start() if end else len(example)]
            return {k: v.strip().strip('"\'') for k, v in EXAMPLE_OPTION.findall(sentence)}
    return {}

RULES = discover_rules()


def fixture_files(name: str) -> list[Path]:
    """The model files a fixture name stands for (empty if none exists)."""
    single = MODELS / f"{name}.onnx"
    if single.exists():
        return [single]
    return [p for p in (MODELS / f"{name}_legacy.onnx", MODELS / f"{name}_dynamo.onnx") if p.exists()]


def example_fixtures(example: str) -> list[tuple[str, bool]]:
    """(fixture name, expected to give findings) for each fixture an Example names."""
    result = []
    for match in FIXTURE_REF.finditer(example):
        end = SENTENCE_END.search(example, match.end())
        sentence = example[match.start():end.start() if end else len(example)]
        result.append((match.group(1), not PASSES.search(sentence)))
    return result


def test_rules_are_discovered():
    codes = {r.code for r in RULES}
    assert {"AL501", "AL502", "AL503"} <= codes


def test_fixture_reference_convention():
    text = "Fixture `plain_chain_12` (twelve convs) and fixture `pool_stride_gap` give findings."
    assert FIXTURE_REF.findall(text) == ["plain_chain_12", "pool_stride_gap"]
    text = ("Fixture `bad_net` (3x3/2 conv, 2x2/2 pool) gives one finding (8/4). Fixture `good_net` "
            "(7x7/2 conv, 3x3/2 pool) passes: stride 4. In fixture `other_bad` the pool gives 15 (2 px).")
    assert example_fixtures(text) == [("bad_net", True), ("good_net", False), ("other_bad", True)]
    assert OPTION_BULLET.findall("- `XY101.max-depth` (int, default 8): Deepest.\n  more text\n") == \
        [("XY101", "max-depth", "int", "8")]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_docstring_has_every_section_with_content(rule):
    sections = rule.doc_sections()
    assert rule.summary().strip(), f"{rule.code}: empty summary line"
    for title in DOC_SECTIONS:
        assert sections.get(title, "").strip(), f"{rule.code}: section '## {title}' is missing or empty"
    assert "Options" not in sections, f"{rule.code}: options are documented by their Option declarations"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_explain_documents_every_declared_option_from_its_declaration(rule):
    text = render_rule(rule)
    documented = OPTION_BULLET.findall(text)
    declared = [(rule.code, o.name, o.type.__name__, "none" if o.default is None else repr(o.default))
                for o in rule.options]
    assert documented == declared, f"{rule.code}: --explain documents {documented}, the rule declares {declared}"
    flat = " ".join(text.split())
    for option in rule.options:
        assert option.help.strip(), f"{rule.code}: option {option.name} has no help text"
        assert " ".join(option.help.split()) in flat, f"{rule.code}: help of {option.name} not shown"
        assert option.parse(option.default) == option.default, f"{rule.code}: default of {option.name}"
    assert ("Options" in text) == bool(rule.options)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_explain_renders_every_section(rule):
    text = render_rule(rule)
    for title, body in rule.doc_sections().items():
        assert title in text and body in text


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_example_fixtures_exist_and_behave_as_documented(rule):
    example = rule.doc_sections().get("Example", "")
    named = example_fixtures(example)
    assert any(fails for _, fails in named), \
        f"{rule.code}: '## Example' names no failing fixture (write: Fixture `NAME` gives ...)"
    for name, fails in named:
        files = fixture_files(name)
        assert files, f"{rule.code}: Example fixture {name} is not in {MODELS}"
        for path in files:
            report = lint(str(path), Config(select=(rule.code,), options=example_options(example, name)))
            found = [f for f in report.findings if f.code == rule.code]
            if fails:
                assert found, f"{rule.code}: Example fixture {path.name} gives no finding"
            else:
                assert not found, (f"{rule.code}: Example says fixture {path.name} passes, but it gives "
                                   f"{[(f.layer, f.message) for f in found]}")


def test_readme_lists_every_rule():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [r.code for r in discover_rules() if f"| {r.code} | `{r.name}` |" not in readme]
    assert not missing, f"README.md rule table lacks {missing}"


def test_readme_names_every_analysis_rules_can_declare():
    from archlint.analyses import ANALYSES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("- **Analyses**: names from"):]
    listed = listed[:listed.index("`Analysis(name, compute)`")]
    missing = [name for name in ANALYSES if f"`{name}`" not in listed]
    assert not missing, f"README.md's plugin API list of analyses lacks {missing}"
