"""Budget rules (AL6xx): limits parsed with SI suffixes, off by default, checked from config, flags and diff."""

from __future__ import annotations

import json

import pytest

from archlint.api import lint
from archlint.engine.config import load_config
from archlint.errors import ConfigError
from archlint.api import Count, Ratio
from conftest import fixture_path, run_cli

MODEL = "budget_net_dynamo.onnx"


@pytest.mark.parametrize("text,value", [("4.5G", 4_500_000_000), ("30M", 30_000_000), ("512k", 512_000),
                                        ("1.5e3", 1500), ("2Mi", 2 * 2**20), (" 7 ", 7), (12, 12), (3e6, 3_000_000)])
def test_counts_parse_si_suffixes(text, value):
    assert Count(text) == value


@pytest.mark.parametrize("text", ["4.5Q", "-3", "1.5", "abc", "1e-4k", True])
def test_bad_counts_are_rejected(text):
    with pytest.raises(ValueError):
        Count(text)


@pytest.mark.parametrize("text,value", [("5%", 0.05), ("0.05", 0.05), ("150%", 1.5), (1, 1.0)])
def test_ratios(text, value):
    assert Ratio(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "-5%", "nan", False])
def test_bad_ratios_are_rejected(text):
    with pytest.raises(ValueError):
        Ratio(text)


def test_budgets_are_off_by_default():
    for name in ("budget_net_dynamo.onnx", "plain_convs_legacy.onnx", "core_branches_dynamo.onnx"):
        assert not [f for f in lint(str(fixture_path(name))).findings if f.code.startswith("AL6")]


def test_budgets_from_config_file(tmp_path):
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.archlint]\nselect = ["AL6"]\nAL601.max-macs = "1.5M"\nAL602.max-params = "30M"\n')
    report = lint(str(fixture_path(MODEL)), load_config(config))
    assert [(f.code, f.data["limit"]) for f in report.findings] == [("AL601", 1_500_000)]
    config.write_text('[tool.archlint]\nAL601.max-macs = "4.5 gazillion"\n')
    with pytest.raises(ConfigError, match="max-macs"):
        lint(str(fixture_path(MODEL)), load_config(config))


def test_budget_flags_and_errors():
    r = run_cli(fixture_path(MODEL), "--isolated", "--select", "AL6", "--max-macs", "1.5M", "--max-params", "5k",
                "--max-peak-activation", "30k", "--min-receptive-field", "50%", "--format", "json")
    assert r.returncode == 1, r.stderr
    assert sorted(f["code"] for f in json.loads(r.stdout)["findings"]) == ["AL601", "AL602", "AL603", "AL604"]
    r = run_cli(fixture_path(MODEL), "--isolated", "--select", "AL6", "--max-macs", "2M", "--max-params", "6k")
    assert r.returncode == 0, r.stdout
    for flag, value in (("--max-macs", "4.5Q"), ("--max-params", "lots"), ("--min-receptive-field", "half"),
                        ("--max-macs-increase", "-5%")):
        r = run_cli(fixture_path(MODEL), "--isolated", flag, value)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith("archlint: error: option") and len(r.stderr.strip().splitlines()) == 1


def test_macs_increase_against_diff_base():
    # BASE has conv2 depthwise-separable (2,046,272 MACs), HEAD the standard conv (3,563,840): +74.2%
    base, head = fixture_path("plain_convs_separable_legacy.onnx"), fixture_path("plain_convs_dynamo.onnx")
    r = run_cli("diff", base, head, "--isolated", "--max-macs-increase", "50%", "--format", "json")
    assert r.returncode == 1
    new = [f for f in json.loads(r.stdout)["findings"]["new"] if f["code"] == "AL605"]
    assert new and new[0]["data"]["baseline_macs"] == 2046272 and new[0]["data"]["macs"] == 3563840
    assert new[0]["data"]["increase"] == pytest.approx(3563840 / 2046272 - 1)
    r = run_cli("diff", base, head, "--isolated", "--max-macs-increase", "75%", "--select", "AL6")
    assert r.returncode == 0
    r = run_cli("diff", head, base, "--isolated", "--max-macs-increase", "0%", "--select", "AL6")
    assert r.returncode == 0  # a decrease is fine


def test_macs_increase_against_baseline_report(tmp_path):
    baseline = tmp_path / "b.json"
    run_cli(fixture_path("plain_convs_separable_dynamo.onnx"), "--isolated", "--write-baseline", baseline,
            "--exit-zero")
    r = run_cli(fixture_path("plain_convs_legacy.onnx"), "--isolated", "--baseline", baseline,
                "--max-macs-increase", "5%", "--format", "json")
    codes = [f["code"] for f in json.loads(r.stdout)["findings"]]
    assert r.returncode == 1 and "AL605" in codes and "AL401" in codes
