"""Baselines: fingerprints stable across exporters and unrelated edits; --baseline / --write-baseline."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from archlint.api import lint
from archlint.engine.baseline import apply_baseline, baseline_from_report, load_baseline, report_fingerprints
from archlint.errors import ConfigError
from conftest import RESNET_DOWNSAMPLING_BLOCKS, fixture_path, run_cli


def _fingerprints(path, **kwargs):
    return Counter(report_fingerprints(lint(str(path), **kwargs)))


@pytest.mark.parametrize("name", ["plain_convs", "budget_net", "core_branches", "plain_chain_30", "pool_stride_gap"])
def test_fingerprints_equal_across_exporters(name):
    legacy = fixture_path(f"{name}_legacy.onnx")
    dynamo = fixture_path(f"{name}_dynamo.onnx")
    a, b = _fingerprints(legacy), _fingerprints(dynamo)
    assert a == b and sum(a.values()) == len(lint(str(legacy)).findings)


@pytest.mark.parametrize("name", ["resnet50", "inception_v3", "densenet121"])
def test_torchvision_fingerprints_equal_across_exporters(zoo, name):
    a = _fingerprints(zoo[name].paths["legacy"])
    b = _fingerprints(zoo[name].paths["dynamo"])
    assert a == b and a


def test_fingerprint_ignores_limits_and_measurements():
    base = lint(str(fixture_path("plain_convs_dynamo.onnx")), select=["AL401"])
    raised = lint(str(fixture_path("plain_convs_dynamo.onnx")), select=["AL401"],
                  options={"AL401.min-separable-saving": 0.6})
    assert [f.data["limit"] for f in raised.findings] != [f.data["limit"] for f in base.findings]
    assert report_fingerprints(base) == report_fingerprints(raised)
    # same layers, different rules: different fingerprints
    assert len(set(report_fingerprints(lint(str(fixture_path("plain_convs_dynamo.onnx")))))) == \
        len(lint(str(fixture_path("plain_convs_dynamo.onnx"))).findings)


def test_baseline_silences_old_findings_and_reports_fixed():
    # baseline: the model with conv2 depthwise-separable; head: conv2 standard again (AL401 new)
    old = lint(str(fixture_path("plain_convs_separable_legacy.onnx")))
    new = lint(str(fixture_path("plain_convs_dynamo.onnx")))
    result = apply_baseline(new, baseline_from_report(old.to_dict(), "old.json"))
    assert [(f.code, f.layer) for f in result.findings] == [("AL401", "conv2")]
    assert result.summary.baseline["baselined"] == len(old.findings) and result.summary.baseline["fixed"] == []
    # the other way round: conv2's finding is fixed, nothing is new
    back = apply_baseline(old, baseline_from_report(new.to_dict(), "new.json"))
    assert back.findings == ()
    assert [(f["code"], f["layer"]) for f in back.summary.baseline["fixed"]] == [("AL401", "conv2")]
    assert any("fixed since the baseline: AL401 at conv2" in n for n in back.summary.notes)


def test_baseline_survives_unrelated_edit_and_exporter(resnet_stride_in_1x1, tmp_path):
    """ResNet-50 baseline (dynamo) applied to the stride-in-1x1 variant (legacy export):
    only the three new AL201 findings of the strided 1x1 convs remain."""
    base_path, path = resnet_stride_in_1x1[:2]
    baseline = tmp_path / "base.json"
    r = run_cli(base_path, "--isolated", "--write-baseline", baseline, "--exit-zero")
    assert r.returncode == 0, r.stderr
    r = run_cli(path, "--isolated", "--baseline", baseline, "--format", "json")
    doc = json.loads(r.stdout)
    assert sorted((f["code"], f["layer"]) for f in doc["findings"]) == [("AL201", f"{n}.0.conv1") for n in RESNET_DOWNSAMPLING_BLOCKS]
    assert r.returncode == 1
    assert doc["summary"]["baseline"]["baselined"] == len(json.loads(baseline.read_text())["findings"])


def test_cli_write_then_use_baseline(tmp_path):
    model = fixture_path("plain_convs_dynamo.onnx")
    baseline = tmp_path / "baseline.json"
    first = run_cli(model, "--isolated", "--write-baseline", baseline)
    assert first.returncode == 1  # findings, none baselined yet
    stored = json.loads(baseline.read_text())
    assert stored["findings"]
    again = run_cli(model, "--isolated", "--baseline", baseline)
    assert again.returncode == 0, again.stdout
    assert f"{len(stored['findings'])} finding(s) baselined, 0 new, 0 fixed" in again.stdout
    # the same model through the other exporter is still fully baselined
    other = run_cli(fixture_path("plain_convs_legacy.onnx"), "--isolated", "--baseline", baseline, "--format", "json")
    assert other.returncode == 0 and json.loads(other.stdout)["findings"] == []


def test_bad_baseline_is_one_line_error(tmp_path):
    model = fixture_path("plain_convs_dynamo.onnx")
    for content in (None, "{not json", '{"schema_version": 1}', "[]"):
        path = tmp_path / "b.json"
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(content)
        r = run_cli(model, "--isolated", "--baseline", path)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith("archlint: error: --baseline") and len(r.stderr.strip().splitlines()) == 1
        with pytest.raises(ConfigError):
            load_baseline(path)
