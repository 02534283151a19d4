"""AL4xx (depthwise-separable replacement): the cost analysis, the rule's docs and the MobileNet v1 check."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from archlint.api import Config, Layer, Op, lint, lint_graph, separable_cost
from archlint.export import export_onnx
from archlint.rules.depthwise import ReplaceableStandardConv, get_rules
from conftest import chain_graph

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"

# MobileNet v1 body (Howard et al. 2017, Table 1): (output channels, stride) of each
# depthwise-separable block after the 3x3 stride-2 stem with 32 channels; 224x224 input.
MOBILENET_V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def _conv(name, cin, cout, size_in, size_out, k=3, stride=1, pad=1, groups=1, batch=1):
    return Layer(name, Op.CONV, "Conv", (batch, cout, size_out, size_out), ((batch, cin, size_in, size_in),),
                 kernel=(k, k), stride=(stride, stride), pads_begin=(pad, pad), pads_end=(pad, pad),
                 dilation=(1, 1), groups=groups, in_channels=cin, out_channels=cout)


def test_separable_cost_counts_per_output_position():
    # 3x3, 64 -> 128 on 56x56 with padding 1: 3136 positions
    cost = separable_cost(_conv("c", 64, 128, 56, 56))
    assert cost.macs == 3136 * 9 * 64 * 128
    assert cost.depthwise_macs == 3136 * 9 * 64
    assert cost.pointwise_macs == 3136 * 64 * 128
    assert cost.macs_after == 3136 * (9 * 64 + 64 * 128)
    assert cost.macs_saved == cost.macs - cost.macs_after
    assert float(cost.saving_ratio) == pytest.approx(1 - 1 / 128 - 1 / 9)


def test_separable_cost_uses_the_convs_own_output_size():
    # same conv, stride 2 padding 1 (112 -> 56) and stride 2 no padding (112 -> 55)
    padded = separable_cost(_conv("a", 32, 64, 112, 56, stride=2, pad=1))
    valid = separable_cost(_conv("b", 32, 64, 112, 55, stride=2, pad=0))
    assert padded.macs_after == 56 * 56 * (9 * 32 + 32 * 64)
    assert valid.macs_after == 55 * 55 * (9 * 32 + 32 * 64)
    assert valid.macs == 55 * 55 * 9 * 32 * 64


def test_separable_cost_counts_the_batch():
    one, four = separable_cost(_conv("a", 16, 16, 8, 8)), separable_cost(_conv("b", 16, 16, 8, 8, batch=4))
    assert (four.macs, four.macs_after) == (4 * one.macs, 4 * one.macs_after)


@pytest.mark.parametrize("layer", [
    _conv("pointwise", 32, 64, 8, 8, k=1, pad=0),
    _conv("depthwise", 32, 32, 8, 8, groups=32),
    _conv("grouped", 32, 64, 8, 8, groups=4),
    Layer("fc", Op.LINEAR, "Gemm", (1, 10), ((1, 32),), in_channels=32, out_channels=10),
])
def test_separable_cost_is_none_for_convs_it_cannot_replace(layer):
    assert separable_cost(layer) is None


def test_rule_skips_small_savings_and_few_input_channels():
    # 2x2 conv 16 -> 2: saving 1 - 1/2 - 1/4 = 0.25 < 0.5; 3x3 conv 2 -> 16: Cin 2 < 8
    g = chain_graph(_conv("stem", 2, 16, 8, 8), _conv("narrow", 16, 2, 8, 7, k=2, pad=0))
    report = lint_graph(g, Config(select=("AL401",)), rules=get_rules())
    assert report.findings == ()
    report = lint_graph(g, Config(select=("AL401",), options={"AL401.min-separable-saving": 0.25,
                                                              "AL401.min-separable-in-channels": 2}), rules=get_rules())
    assert {f.layer for f in report.findings} == {"stem", "narrow"}
    narrow = next(f for f in report.findings if f.layer == "narrow")
    assert narrow.data["macs_saved"] == 49 * (4 * 16 * 2) - 49 * (4 * 16 + 16 * 2)
    assert narrow.data["saving_ratio"] == pytest.approx(0.25)


def test_message_names_the_layer_and_shows_saving_against_limit():
    report = lint(str(MODELS / "plain_convs_legacy.onnx"), select=("AL401",))
    conv1 = next(f for f in report.findings if f.layer == "conv1")
    assert "'conv1'" in conv1.message and "16->24" in conv1.message
    # 9*16*24 and 9*16 + 16*24 MACs at each of 16x16 positions: 884,736 and 135,168
    assert "884.7k MACs" in conv1.message and "135.2k" in conv1.message and "85% >= 50%" in conv1.message
    assert conv1.severity.value == "info"


@pytest.mark.parametrize("variant", ["legacy", "dynamo"])
def test_summary_adds_up_the_savings(variant):
    # plain_convs: conv1 749568 + conv2 1517568 + conv3 387296 saved (see fixtures/cases/AL401.yml)
    report = lint(str(MODELS / f"plain_convs_{variant}.onnx"), select=("AL401",))
    assert report.summary.macs_saved == 749568 + 1517568 + 387296


def test_docs_have_sections_options_and_a_failing_example():
    sections = ReplaceableStandardConv.doc_sections()
    for title in ("What it flags", "Why it matters", "Example", "Fix"):
        assert sections.get(title), title
    for option in ReplaceableStandardConv.options:
        assert f"`AL401.{option.name}`" in ReplaceableStandardConv.options_doc()
        assert option.help
    assert "`plain_convs`" in sections["Example"]
    report = lint(str(MODELS / "plain_convs_legacy.onnx"), select=("AL401",))
    assert {f.layer for f in report.findings} == {"conv1", "conv2", "conv3"}


# -- MobileNet v1: the paper's numbers ---------------------------------------------------------


def _mobilenet_v1(separable: bool):
    import torch.nn as nn

    def block(cin, cout, stride):
        if separable:
            return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                                 nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    layers, cin = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()], 32
    for cout, stride in MOBILENET_V1:
        layers.append(block(cin, cout, stride))
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))


def _export(module, path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    return export_onnx(module, torch.randn(1, 3, 224, 224), path, "legacy")


@pytest.fixture(scope="session")
def mobilenet_reports(tmp_path_factory):
    """AL401 reports of full-convolution MobileNet v1 and of real MobileNet v1 (legacy export)."""
    folder = tmp_path_factory.mktemp("mobilenet_v1")
    config = Config(select=("AL401",))
    full = lint(str(_export(_mobilenet_v1(separable=False), folder / "conv_mobilenet_v1.onnx")), config)
    real = lint(str(_export(_mobilenet_v1(separable=True), folder / "mobilenet_v1.onnx")), config)
    return full, real


def _expected_full_conv_macs() -> int:
    """Independent count from Table 1: stem, 13 standard 3x3 convs (padding 1) and the classifier."""
    size = 112
    total, cin = 112 * 112 * 9 * 3 * 32, 32
    for cout, stride in MOBILENET_V1:
        size = math.ceil(size / stride)
        total += size * size * 9 * cin * cout
        cin = cout
    return total + 1024 * 1000


def test_full_convolution_mobilenet_v1_matches_the_paper(mobilenet_reports):
    full, _ = mobilenet_reports
    assert full.summary.macs == _expected_full_conv_macs()
    # Howard et al. 2017, Table 4: Conv MobileNet 4866M mult-adds
    assert full.summary.macs == pytest.approx(4866e6, rel=0.005)
    # every block's 3x3 conv is flagged; the RGB stem (3 input channels) is not
    # (Sequential indices: stem conv, norm, relu are 0-2; block i is at 3 + i, its conv at ".0")
    blocks = {f"{3 + i}.0" for i in range(len(MOBILENET_V1))}
    assert {f.layer for f in full.findings} == blocks


def test_applying_every_replacement_gives_mobilenet_v1(mobilenet_reports):
    full, real = mobilenet_reports
    after = full.summary.macs - full.summary.macs_saved
    assert full.summary.macs_saved == sum(f.data["macs_saved"] for f in full.findings)
    # Howard et al. 2017, Table 4: MobileNet 569M mult-adds
    assert after == pytest.approx(569e6, rel=0.02)
    # and exactly what archlint counts on the real, depthwise-separable network
    assert after == real.summary.macs
    assert real.findings == ()
