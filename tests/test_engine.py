"""The engine seen from the command line: config, selection, suppression, exit codes, plugins, rule docs.

Most tests run ``archlint.cli.main`` in-process on the ``flatten_head_8x8`` fixture with only
the AL5xx rules selected, where two findings are known by hand: AL501 at ``fc`` (an 8x8x8 map
flattened into a dense layer) and AL503 at ``pool`` (a 4x4 receptive field on a 16x16 input).
Plugin discovery runs in a subprocess whose ``sys.path`` holds a hand-made dist-info folder,
as an installed third-party package leaves it (the flake8 ``finder_test.py`` pattern).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archlint.analyses import ANALYSES
from archlint.analyses.shapes import window_output_size
from archlint.api import Graph, Layer, Op, lint_graph
from archlint.cli import main
from archlint.engine.registry import discover_rules
from archlint.engine.run import AnalysisCache
from conftest import fixture_path
from archlint.reports import RENDERERS

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "fixtures" / "models" / "flatten_head_8x8_legacy.onnx"
PLUGIN_SRC = Path(__file__).resolve().parent / "plugin_example" / "archlint_example_plugin"
BOTH = {("AL501", "fc"), ("AL503", "pool")}


@pytest.fixture(autouse=True)
def _no_config_around(tmp_path, monkeypatch):
    """Run every test from an empty folder so no project config is picked up by accident."""
    monkeypatch.chdir(tmp_path)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def findings(capsys, *args: str) -> tuple[int, set[tuple[str, str]], dict]:
    """Lint MODEL as JSON: (exit code, {(code, layer)}, document)."""
    code, out, err = run(capsys, MODEL, "--format", "json", *args)
    assert code in (0, 1), err
    doc = json.loads(out)
    return code, {(f["code"], f["layer"]) for f in doc["findings"]}, doc


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archlint: error: "), err
    return lines[0]


# --- configuration files and flags ------------------------------------------------------

def test_setup_cfg_archlint_section_is_read(tmp_path, capsys):
    (tmp_path / "setup.cfg").write_text("[archlint]\nselect = AL501\n")
    assert findings(capsys)[1] == {("AL501", "fc")}


def test_pyproject_tool_archlint_is_read_and_beats_setup_cfg_in_the_same_folder(tmp_path, capsys):
    (tmp_path / "setup.cfg").write_text("[archlint]\nselect = AL501\n")
    (tmp_path / "pyproject.toml").write_text('[tool.archlint]\nselect = ["AL503"]\n')
    assert findings(capsys)[1] == {("AL503", "pool")}


def test_config_is_found_in_a_parent_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.archlint]\nselect = ["AL503"]\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert findings(capsys)[1] == {("AL503", "pool")}


def test_explicit_config_file_is_used_and_isolated_ignores_config(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text('[tool.archlint]\nselect = ["AL503"]\n')
    other = tmp_path / "lint.toml"
    other.write_text('[tool.archlint]\nselect = ["AL501"]\n')
    assert findings(capsys, "--config", other)[1] == {("AL501", "fc")}
    assert findings(capsys, "--isolated", "--select", "AL5")[1] == BOTH


def test_command_line_flags_override_the_config_file(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.archlint]
        select = ["AL501"]
        AL501.max-flattened-positions = 64
    """))
    assert findings(capsys)[1] == set()  # the file's option raises the limit above 8x8 = 64
    assert findings(capsys, "--set", "AL501.max-flattened-positions=63")[1] == {("AL501", "fc")}
    assert findings(capsys, "--set", "flattened-map-into-dense.max-flattened-positions=63")[1] == {("AL501", "fc")}
    assert findings(capsys, "--select", "AL503")[1] == {("AL503", "pool")}


def test_rule_option_from_config_reaches_the_finding(tmp_path, capsys):
    (tmp_path / "setup.cfg").write_text("[archlint]\nselect = AL503\nAL503.min-input-coverage = 0.3\n")
    _, found, doc = findings(capsys)  # setup.cfg lowercases the key: codes match in any case
    assert found == {("AL503", "pool")}
    assert doc["findings"][0]["data"]["limit"] == 0.3
    assert not [n for n in doc["summary"]["notes"] if "deprecated" in n]


def test_rule_options_in_a_toml_table_named_after_the_rule(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.archlint]
        select = ["AL503"]
        [tool.archlint.receptive-field-misses-input]
        min-input-coverage = 0.3
    """))
    _, found, doc = findings(capsys)
    assert found == {("AL503", "pool")} and doc["findings"][0]["data"]["limit"] == 0.3


def test_flat_option_names_still_work_with_a_deprecation_note(tmp_path, capsys):
    (tmp_path / "setup.cfg").write_text("[archlint]\nselect = AL503\nmin-input-coverage = 0.3\n")
    _, found, doc = findings(capsys)
    assert found == {("AL503", "pool")} and doc["findings"][0]["data"]["limit"] == 0.3
    assert "option 'min-input-coverage' is deprecated: write 'AL503.min-input-coverage' (unqualified option " \
           "names go away in the next release)" in doc["summary"]["notes"]


def test_two_rules_share_an_option_name_and_old_names_are_aliases(tmp_path, capsys):
    """AL201 (convs) and AL502 (pools) run one check, with one option name in each namespace."""
    from archlint.api import Config, lint
    model = str(ROOT / "fixtures" / "models" / "pool_stride_gap_legacy.onnx")
    limits = lambda report: {f.data["limit"] for f in report.findings}  # noqa: E731
    assert limits(lint(model, Config(select=("AL502",), options={"AL502.max-unread": 0.6}))) == {0.6}
    old = lint(model, Config(select=("AL502",), options={"max-unread-share": 0.6}))
    assert limits(old) == {0.6} and any("'AL502.max-unread'" in n for n in old.summary.notes)
    line = one_line_error(*run(capsys, MODEL, "--set", "max-unread=0.5"))
    assert "AL201.max-unread or AL502.max-unread" in line


def test_options_that_name_no_rule_or_no_option_are_one_line_errors(capsys):
    assert "no rule has the code or name 'AL599'" in one_line_error(*run(capsys, MODEL, "--set", "AL599.depth=3"))
    line = one_line_error(*run(capsys, MODEL, "--set", "AL501.depth=3"))
    assert "rule AL501 has no option 'depth'" in line and "max-flattened-positions" in line


# --- select / ignore --------------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (("--select", "AL501"), {("AL501", "fc")}),                                   # code
    (("--select", "AL5"), BOTH),                                                  # prefix
    (("--select", "receptive-field-misses-input"), {("AL503", "pool")}),          # name
    (("--select", "AL5", "--ignore", "AL501"), {("AL503", "pool")}),              # code beats prefix
    (("--select", "AL503", "--ignore", "AL5"), {("AL503", "pool")}),              # ... both ways
    (("--select", "AL50", "--ignore", "AL5"), BOTH),                              # longer prefix wins
    (("--select", "AL5", "--ignore", "flattened-map-into-dense"), {("AL503", "pool")}),
    (("--select", "AL501,AL503"), BOTH),                                          # comma list
])
def test_select_and_ignore_most_specific_wins(capsys, args, expected):
    assert findings(capsys, *args)[1] == expected


def test_unknown_selector_is_a_one_line_error(capsys):
    line = one_line_error(*run(capsys, MODEL, "--select", "AL599"))
    assert "'AL599'" in line and "select" in line
    line = one_line_error(*run(capsys, MODEL, "--ignore", "no-such-rule"))
    assert "'no-such-rule'" in line and "ignore" in line


def test_unknown_option_is_a_one_line_error(capsys, tmp_path):
    line = one_line_error(*run(capsys, MODEL, "--set", "max-flatened-positions=3"))
    assert "max-flatened-positions" in line and "unknown option" in line
    (tmp_path / "pyproject.toml").write_text('[tool.archlint]\nmin-input-coverag = 0.5\n')
    assert "min-input-coverag" in one_line_error(*run(capsys, MODEL))


@pytest.mark.parametrize("value", ["lots", "1.5", "true"])
def test_bad_option_value_is_a_one_line_error(capsys, value):
    line = one_line_error(*run(capsys, MODEL, "--set", f"AL501.max-flattened-positions={value}"))
    assert "max-flattened-positions" in line and "AL501" in line


def test_bad_config_values_are_one_line_errors(capsys, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.archlint]\nfail-on = "fatal"\n')
    assert "fail-on" in one_line_error(*run(capsys, MODEL))
    (tmp_path / "pyproject.toml").write_text('[tool.archlint\nselect = 1\n')
    assert "pyproject.toml" in one_line_error(*run(capsys, MODEL))
    assert "nothing.toml" in one_line_error(*run(capsys, MODEL, "--config", tmp_path / "nothing.toml"))


# --- exit codes -------------------------------------------------------------------------

def test_fail_on_and_exit_zero(capsys, tmp_path):
    assert run(capsys, MODEL, "--select", "AL5")[0] == 1                     # warnings fail by default
    assert run(capsys, MODEL, "--select", "AL5", "--fail-on", "error")[0] == 0
    code, out, _ = run(capsys, MODEL, "--select", "AL5", "--exit-zero")
    assert code == 0 and "AL501" in out and "AL503" in out                   # still reported
    assert run(capsys, MODEL, "--select", "AL502")[0] == 0                   # clean model
    (tmp_path / "setup.cfg").write_text("[archlint]\nselect = AL5\nfail-on = error\n")
    assert run(capsys, MODEL)[0] == 0
    assert run(capsys, MODEL, "--fail-on", "info")[0] == 1                   # flag beats file


# --- suppressions -----------------------------------------------------------------------

def test_per_node_ignores_from_pyproject(capsys, tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.archlint]
        select = ["AL5"]
        [tool.archlint.per-node-ignores]
        "f?" = ["AL501"]
        "po*" = ["receptive-field-misses-input"]
    """))
    code, found, doc = findings(capsys)
    assert (code, found) == (0, set())
    assert not [n for n in doc["summary"]["notes"] if "unused suppression" in n]


def test_per_node_ignores_from_setup_cfg_and_unused_ones_are_noted(capsys, tmp_path):
    (tmp_path / "setup.cfg").write_text(textwrap.dedent("""
        [archlint]
        select = AL5
        per-node-ignores =
            fc: AL501
            conv*: AL5
    """))
    _, found, doc = findings(capsys)
    assert found == {("AL503", "pool")}
    assert [n for n in doc["summary"]["notes"] if "suppression" in n] == [
        "unused suppression: per-node-ignores 'conv*' for AL5 silenced nothing"]
    code, out, _ = run(capsys, MODEL)
    assert "note: unused suppression: per-node-ignores 'conv*' for AL5 silenced nothing" in out


def test_suppression_of_a_rule_that_did_not_run_is_not_reported_unused(capsys, tmp_path):
    (tmp_path / "setup.cfg").write_text("[archlint]\nselect = AL503\nper-node-ignores =\n    fc: AL501\n")
    assert not [n for n in findings(capsys)[2]["summary"]["notes"] if "suppression" in n]


def test_per_node_ignore_naming_an_unknown_code_is_an_error(capsys, tmp_path):
    (tmp_path / "setup.cfg").write_text("[archlint]\nper-node-ignores =\n    fc: AL598\n")
    assert "AL598" in one_line_error(*run(capsys, MODEL, "--select", "AL5"))


def _marked_model(tmp_path: Path) -> Path:
    """The fixture with inline markers: a doc_string on the Gemm, ``archlint`` metadata on MaxPool and Conv."""
    model = onnx.load(str(MODEL))
    for node in model.graph.node:
        if node.op_type == "Gemm":
            node.doc_string = "legacy head kept for checkpoint compatibility; archlint: ignore[AL501]"
        elif node.op_type == "MaxPool":
            node.metadata_props.add(key="archlint", value="archlint: ignore[receptive-field-misses-input]")
        elif node.op_type == "Conv":
            node.metadata_props.add(key="archlint", value="archlint: ignore[AL502]")  # nothing to silence
    path = tmp_path / "marked.onnx"
    onnx.save(model, str(path))
    return path


def test_inline_markers_in_doc_string_and_metadata_suppress(capsys, tmp_path):
    marked = _marked_model(tmp_path)
    code, out, err = run(capsys, marked, "--select", "AL5", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["findings"] == []
    assert [n for n in doc["summary"]["notes"] if "suppression" in n] == [
        "unused suppression: inline marker on 'conv' for AL502 silenced nothing"]
    # selected alone (and more specifically than the ignored family), AL501 is still silenced inline
    code, out, _ = run(capsys, marked, "--select", "AL501", "--ignore", "AL5", "--format", "json")
    assert json.loads(out)["findings"] == []


# --- rule documentation on the command line ----------------------------------------------

def test_list_rules_text_and_json_come_from_the_docstrings(capsys):
    code, out, _ = run(capsys, "--list-rules")
    assert code == 0
    rules = {r.code: r for r in discover_rules()}
    for rule in rules.values():
        line = next(line for line in out.splitlines() if line.startswith(rule.code + " "))
        assert rule.name in line and rule.severity.value in line and rule.summary() in line
    code, out, _ = run(capsys, "--list-rules", "--format", "json")
    listed = {r["code"]: r for r in json.loads(out)}
    assert set(listed) == set(rules)
    assert listed["AL502"]["summary"] == rules["AL502"].summary()
    assert listed["AL502"]["sections"] == {**rules["AL502"].doc_sections(), "Options": rules["AL502"].options_doc()}


def test_explain_text_shows_every_section_and_option(capsys):
    rule = next(r for r in discover_rules() if r.code == "AL501")
    for key in ("AL501", "flattened-map-into-dense"):
        code, out, _ = run(capsys, "--explain", key)
        assert code == 0
        assert out.startswith("AL501 flattened-map-into-dense (warning)")
        for title, body in rule.doc_sections().items():
            assert title in out and body in out
        assert "- `AL501.max-flattened-positions` (int, default 1): " in out
        assert "- `AL501.min-dense-param-share` (float, default 0.2): " in out


def test_explain_json(capsys):
    rule = next(r for r in discover_rules() if r.code == "AL503")
    code, out, _ = run(capsys, "--explain", "AL503", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert (doc["code"], doc["name"], doc["severity"]) == ("AL503", "receptive-field-misses-input", "warning")
    assert doc["sections"] == {**rule.doc_sections(), "Options": rule.options_doc()}
    assert doc["options"] == [{"name": "min-input-coverage", "qualified": "AL503.min-input-coverage", "type": "float",
                               "default": 1.0, "help": rule.options[0].help, "aliases": []}]
    assert doc["fingerprint_keys"] == []


def test_explain_unknown_rule_is_a_one_line_error(capsys):
    assert "AL599" in one_line_error(*run(capsys, "--explain", "AL599"))


# --- plugins ----------------------------------------------------------------------------

def _dist_info(site: Path, dist: str, entry_points: str) -> None:
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[archlint.rules]\n{entry_points}\n")


def _site_with_example_plugin(tmp_path: Path, entry_point: str = "XP1") -> Path:
    site = tmp_path / "site"
    shutil.copytree(PLUGIN_SRC, site / PLUGIN_SRC.name, ignore=shutil.ignore_patterns("__pycache__"))
    _dist_info(site, "archlint-example-plugin", f"{entry_point} = archlint_example_plugin.rules")
    return site


def run_subprocess(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "import sys; from archlint.cli import run; run(sys.argv[1:])",
                           *map(str, args)], capture_output=True, text=True, env=env, cwd=site, timeout=120)


def test_installed_plugin_is_listed_and_finds(tmp_path):
    site = _site_with_example_plugin(tmp_path)
    listed = run_subprocess(site, "--list-rules")
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("XP101 ") and "wide-conv" in line for line in listed.stdout.splitlines())
    assert any(line.startswith("AL501 ") for line in listed.stdout.splitlines())  # built-ins still there
    linted = run_subprocess(site, MODEL, "--select", "XP1", "--format", "json")
    assert linted.returncode == 1, linted.stderr           # XP101 is an error
    [finding] = json.loads(linted.stdout)["findings"]
    assert (finding["code"], finding["layer"], finding["severity"]) == ("XP101", "conv", "error")
    assert finding["data"] == {"channels": 8, "limit": 4}
    relaxed = run_subprocess(site, MODEL, "--select", "wide-conv", "--set", "XP101.max-conv-channels=8")
    assert relaxed.returncode == 0 and "XP101" not in relaxed.stdout


def test_plugin_rule_gets_what_a_built_in_gets_flags_references_analyses_fingerprints(tmp_path):
    """XP102 is a ModelBudget with a generated flag, a reference option and its own Analysis; XP101
    declares fingerprint keys. Everything a built-in rule declares works the same for them."""
    site = _site_with_example_plugin(tmp_path)
    helped = run_subprocess(site, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--max-layers-added N" in helped.stdout and "[XP102.max-layers-added]" in " ".join(helped.stdout.split())
    explained = run_subprocess(site, "--explain", "XP102")
    assert "- `XP102.max-layers-added` (Count, default none): " in explained.stdout
    assert "Command line: `--max-layers-added N`" in " ".join(explained.stdout.split())
    # the reference: a baseline report whose summary holds 2 layers; MODEL has more
    linted = json.loads(run_subprocess(site, MODEL, "--format", "json", "--select", "ALL").stdout)
    layers = linted["summary"]["layers"]
    assert layers > 2
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"findings": [], "summary": {"layers": 2}}))
    over = run_subprocess(site, MODEL, "--select", "XP102", "--baseline", reference, "--max-layers-added",
                          str(layers - 3), "--format", "json")
    assert over.returncode == 1, over.stderr
    [finding] = json.loads(over.stdout)["findings"]
    assert (finding["code"], finding["data"]) == ("XP102", {"layers": layers, "baseline_layers": 2,
                                                            "limit": layers - 3})
    within = run_subprocess(site, MODEL, "--select", "XP102", "--baseline", reference, "--max-layers-added",
                            str(layers - 2))
    assert within.returncode == 0, within.stdout + within.stderr
    assert run_subprocess(site, MODEL, "--select", "XP102", "--max-layers-added", "0").returncode == 0  # no reference
    # fingerprint keys: the baselined XP101 finding stays silenced while its channels match
    baseline = tmp_path / "baseline.json"
    written = run_subprocess(site, MODEL, "--select", "XP101", "--write-baseline", baseline, "--exit-zero")
    assert written.returncode == 0, written.stderr
    assert run_subprocess(site, MODEL, "--select", "XP101", "--baseline", baseline).returncode == 0
    document = json.loads(baseline.read_text())
    document["findings"][0]["data"]["limit"] = 6        # not a fingerprint key: still the same finding
    baseline.write_text(json.dumps(document))
    assert run_subprocess(site, MODEL, "--select", "XP101", "--baseline", baseline).returncode == 0
    document["findings"][0]["data"]["channels"] = 16    # a fingerprint key: another finding
    baseline.write_text(json.dumps(document))
    assert run_subprocess(site, MODEL, "--select", "XP101", "--baseline", baseline).returncode == 1


def test_rule_option_flag_that_clashes_with_a_command_line_flag_is_a_one_line_error(tmp_path):
    site = _site_with_example_plugin(tmp_path)
    rules = site / "archlint_example_plugin" / "rules.py"
    rules.write_text(rules.read_text().replace('"max-layers-added"', '"output"'))
    done = run_subprocess(site, MODEL)
    line = one_line_error(done.returncode, done.stdout, done.stderr)
    assert "XP102" in line and "--output" in line and "--set XP102.output=VALUE" in line


def _site_with_broken_plugin(tmp_path: Path) -> Path:
    site = _site_with_example_plugin(tmp_path)
    (site / "archlint_broken_plugin").mkdir()
    (site / "archlint_broken_plugin" / "__init__.py").write_text("")
    (site / "archlint_broken_plugin" / "rules.py").write_text("import archlint_missing_dependency\n")
    _dist_info(site, "archlint-broken-plugin", "XB1 = archlint_broken_plugin.rules")
    return site


def test_plugin_that_fails_to_import_is_named_in_one_line(tmp_path):
    site = _site_with_broken_plugin(tmp_path)
    done = run_subprocess(site, "--list-rules")
    line = one_line_error(done.returncode, done.stdout, done.stderr)
    assert "archlint-broken-plugin" in line and "XB1 = archlint_broken_plugin.rules" in line
    assert "archlint_missing_dependency" in line


def test_version_and_help_work_despite_a_broken_plugin(tmp_path):
    site = _site_with_broken_plugin(tmp_path)
    version = run_subprocess(site, "--version")
    assert (version.returncode, version.stderr) == (0, "") and version.stdout.startswith("archlint, version ")
    for args in (("--help",), ("diff", "--help")):
        done = run_subprocess(site, *args)
        assert done.returncode == 0 and done.stdout.startswith("Usage: archlint") and "--select" in done.stdout
        assert len(done.stderr.splitlines()) == 1 and "archlint-broken-plugin" in done.stderr
    # its option flags are unknown, but the error a run gives is the plugin's
    done = run_subprocess(site, MODEL, "--max-layers-added", "3")
    line = one_line_error(done.returncode, done.stdout, done.stderr)
    assert "archlint-broken-plugin" in line and "archlint_missing_dependency" in line


def test_plugin_rule_code_outside_its_entry_point_prefix_is_rejected(tmp_path):
    site = _site_with_example_plugin(tmp_path, entry_point="ZZ1")
    done = run_subprocess(site, "--list-rules")
    line = one_line_error(done.returncode, done.stdout, done.stderr)
    assert "XP101" in line and "ZZ1" in line and "archlint-example-plugin" in line


_LOCAL_RULE = '''
from archlint.api import Op, Rule, Severity


class AnyPool(Rule):
    """Any windowed pooling layer.

    ## What it flags
    Every max or average pool.
    ## Why it matters
    House style.
    ## Example
    Fixture `flatten_head_8x8`.
    ## Fix
    Use strided convolutions.
    """

    code, name, severity = "LOC101", "any-pool", Severity.INFO

    def check(self, graph, ctx):
        for layer in graph.layers():
            if layer.op in (Op.MAX_POOL, Op.AVG_POOL):
                yield ctx.finding(layer.name, f"pool '{layer.name}'")


def get_rules():
    return [AnyPool]
'''


def test_rules_path_loads_rules_from_py_files(capsys, tmp_path):
    folder = tmp_path / "house_rules"
    folder.mkdir()
    (folder / "pools.py").write_text(_LOCAL_RULE)
    (folder / "helpers.py").write_text("VALUE = 1\n")  # no get_rules(): not a rule module, skipped
    code, out, _ = run(capsys, "--rules-path", folder, "--list-rules")
    assert code == 0 and any(line.startswith("LOC101 ") and "any-pool" in line for line in out.splitlines())
    code, found, _ = findings(capsys, "--rules-path", folder, "--select", "LOC")
    assert (code, found) == (0, {("LOC101", "pool")})           # info does not fail by default
    (tmp_path / "setup.cfg").write_text("[archlint]\nrules-path = house_rules\nselect = any-pool\n"
                                        "fail-on = info\n")
    code, found, _ = findings(capsys)
    assert (code, found) == (1, {("LOC101", "pool")})


def test_rule_reading_an_analysis_it_does_not_declare_is_a_one_line_error(capsys, tmp_path):
    (tmp_path / "sneaky.py").write_text(_LOCAL_RULE.replace(
        "        for layer in graph.layers():", "        ctx.analysis('costs')\n        for layer in graph.layers():"))
    line = one_line_error(*run(capsys, MODEL, "--rules-path", tmp_path, "--select", "LOC101"))
    assert "LOC101" in line and "'costs'" in line and "analyses" in line


def test_broken_rules_path_file_is_a_one_line_error(capsys, tmp_path):
    (tmp_path / "bad.py").write_text("raise RuntimeError('boom')\n")
    line = one_line_error(*run(capsys, "--rules-path", tmp_path, "--list-rules"))
    assert "bad.py" in line and "boom" in line
    assert "not a folder" in one_line_error(*run(capsys, "--rules-path", tmp_path / "missing", "--list-rules"))


# --- crash fuzzing (flake8-bugbear's fuzzer, on graphs) -------------------------------------

_KINDS = ("conv", "max_pool", "avg_pool", "add", "concat", "activation", "head")


def _random_graph(data) -> Graph:
    """A small DAG of conv/pool/add/concat/activation layers with consistent NCHW shapes.

    Each step appends one layer reading earlier layers; shapes follow archlint's own window
    arithmetic, so the graph passes the engine's shape check. An optional head (global pool
    or flatten, then dense) ends some graphs in a global decision.
    """
    draw = data.draw
    h, w = draw(st.integers(1, 20), label="H"), draw(st.integers(1, 20), label="W")
    g = Graph(model="<fuzz>", format="fuzz", inputs=["x"], outputs=[], unsupported_ops={}, notes=[])
    g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, draw(st.integers(1, 4)), h, w)))
    spatial = ["x"]  # layers with N, C, H, W outputs

    def add(layer: Layer, inputs: list[str]) -> None:
        g.add_node(layer.name, layer=layer)
        for index, src in enumerate(inputs):
            g.add_edge(src, layer.name, index=index)

    for i in range(draw(st.integers(1, 10), label="layers")):
        kind = draw(st.sampled_from(_KINDS))
        name = f"{kind}{i}"
        src = draw(st.sampled_from(spatial))
        x = g.layer(src).output_shape
        if kind in ("conv", "max_pool", "avg_pool"):
            k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
            s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
            d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if kind != "avg_pool" else (1, 1)
            pb = tuple(draw(st.integers(0, kk - 1)) for kk in k)
            pe = tuple(draw(st.integers(0, kk - 1)) for kk in k)
            ceil = kind != "conv" and draw(st.booleans())
            out_hw = tuple(window_output_size(x[2 + a], k[a], s[a], pb[a], pe[a], d[a], ceil) for a in range(2))
            if min(out_hw) < 1:
                continue
            window = dict(kernel=k, stride=s, pads_begin=pb, pads_end=pe, dilation=d, ceil_mode=ceil)
            if kind == "conv":
                groups = draw(st.sampled_from([g_ for g_ in (1, 2, x[1]) if x[1] % g_ == 0]))
                cout = groups * draw(st.integers(1, 3))
                add(Layer(name, Op.CONV, "Conv", (1, cout) + out_hw, (x,), groups=groups, in_channels=x[1],
                          out_channels=cout, param_shapes=((cout, x[1] // groups) + k, (cout,)), **window),
                    [src])
            else:
                op = Op.MAX_POOL if kind == "max_pool" else Op.AVG_POOL
                add(Layer(name, op, "Pool", (1, x[1]) + out_hw, (x,), in_channels=x[1], out_channels=x[1],
                          **window), [src])
        elif kind in ("add", "concat"):
            same = [n for n in spatial if g.layer(n).output_shape[2:] == x[2:]
                    and (kind == "concat" or g.layer(n).output_shape == x)]
            other = draw(st.sampled_from(same))
            y = g.layer(other).output_shape
            out = x if kind == "add" else (1, x[1] + y[1]) + x[2:]
            add(Layer(name, Op.ADD if kind == "add" else Op.CONCAT, kind.title(), out, (x, y)), [src, other])
        elif kind == "activation":
            add(Layer(name, Op.ACTIVATION, "Relu", x, (x,)), [src])
        else:  # head: global pool or flatten, then a dense layer; ends the graph
            n_out = draw(st.integers(1, 5))
            if draw(st.booleans()):
                add(Layer(f"gap{i}", Op.GLOBAL_POOL, "GlobalAveragePool", x[:2] + (1, 1), (x,),
                          in_channels=x[1], out_channels=x[1]), [src])
                add(Layer(f"flat{i}", Op.FLATTEN, "Flatten", (1, x[1]), (x[:2] + (1, 1),)), [f"gap{i}"])
                features = x[1]
            else:
                features = x[1] * x[2] * x[3]
                add(Layer(f"flat{i}", Op.FLATTEN, "Flatten", (1, features), (x,)), [src])
            add(Layer(f"fc{i}", Op.LINEAR, "Gemm", (1, n_out), ((1, features),), in_channels=features,
                      out_channels=n_out, param_shapes=((n_out, features), (n_out,))), [f"flat{i}"])
            break
        if kind != "head":
            spatial.append(name)
    g.graph["outputs"] = [n for n in g if g.out_degree(n) == 0]
    return g


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_rule_or_analysis_crashes_on_random_graphs(data):
    graph = _random_graph(data)
    cache = AnalysisCache(graph)
    for name in ANALYSES:
        cache(name)
    report = lint_graph(graph)  # every discovered rule, default options
    for finding in report.findings:
        assert finding.layer in graph and finding.message
    for render in RENDERERS.values():
        render([report], show_layers=True)
    json.dumps(report.to_dict())


def test_the_core_names_no_rule_code():
    """Rules own their metadata: archlint/ (engine, CLI, reports, docstrings) never names a rule by code."""
    import re
    pattern = re.compile(r"\bAL[0-9]{3}\b")
    files = [p for p in sorted((ROOT / "archlint").rglob("*")) if p.suffix in (".py", ".json")]
    named = [f"{path.relative_to(ROOT)}:{n}" for path in files
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not named, f"rule codes named in the core: {named}"


def test_lint_leaves_no_graph_for_the_cycle_collector():
    """networkx caches views (G.nodes, G.edges) that refer back to the graph; lint drops them,
    so its graph is freed when it returns instead of waiting for a full collection."""
    import gc

    from archlint import lint
    from archlint.graph import Graph

    gc.collect()
    gc.disable()
    try:
        report = lint(fixture_path("example_cnn_dynamo.onnx"))
        left = [o for o in gc.get_objects() if type(o) is Graph]  # isinstance would read proxies' __class__
    finally:
        gc.enable()
    assert report.layers and not left


def test_cli_pauses_the_collector_and_frees_each_model_before_the_next(tmp_path, monkeypatch):
    import gc

    from archlint import cli

    seen, collected = [], []
    real = cli._lint_one
    monkeypatch.setattr(cli, "_lint_one", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    monkeypatch.setattr(cli.gc, "collect", lambda *a: collected.append(a) or 0)
    path = fixture_path("example_cnn_dynamo.onnx")
    with pytest.raises(SystemExit):
        main([str(path), str(fixture_path("core_chain_legacy.onnx")), "--format", "json", "--jobs", "1",
              "--output", str(tmp_path / "out.json")])
    assert seen == [False, False] and len(collected) == 1 and gc.isenabled()
