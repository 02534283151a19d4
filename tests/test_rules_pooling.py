"""Pooling and spatial-information rules (AL5xx): a real torchvision VGG-16, and graph-level edge cases.

The YAML cases in ``fixtures/cases/AL50*.yml`` cover fail/pass/option/suppression on tiny
fixtures; this file checks the rules on a real network with hand-computed numbers and on
hand-built graphs for the cases exporters rarely produce (dilated pooling, NHWC flatten,
dense prediction heads).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archlint.api import Config, Graph, Layer, Op, flattened_dense_heads, input_coverage, lint, lint_graph
from archlint.analyses.macs import costs
from archlint.analyses.receptive_field import receptive_fields
from archlint.engine.registry import discover_rules

_EXPORT_VGG16 = textwrap.dedent("""
    import sys
    import torch
    _lib = torch.library.Library("torchvision", "DEF")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.vgg16().eval()
    with torch.no_grad():  # torchvision zero-initialises biases; the exporter would drop zero tensors
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.fill_(0.01)
    from archlint.export import export_onnx
    export_onnx(model, torch.randn(1, 3, 224, 224), sys.argv[1], "dynamo")
""")


@pytest.fixture(scope="session")
def vgg16_onnx(tmp_path_factory):
    """torchvision VGG-16 exported once per session (dynamo exporter, weights in a .data file).

    Biases are set to 0.01: torchvision initialises them to zero and the dynamo exporter
    drops all-zero tensors, which would hide them from the parameter count.
    """
    cache = os.environ.get("ARCHLINT_TEST_CACHE")  # keep the export between sessions, as tests/conftest.py
    folder = Path(cache) if cache else tmp_path_factory.mktemp("vgg16")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vgg16_biased_dynamo.onnx"
    if path.exists() and Path(f"{path}.data").exists():
        return path
    done = subprocess.run([sys.executable, "-c", _EXPORT_VGG16, str(path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"VGG-16 export failed:\n{done.stderr[-3000:]}"
    return path


@pytest.fixture(scope="session")
def vgg16_report(vgg16_onnx):
    return lint(str(vgg16_onnx), Config(select=("AL5",)))


# Hand-computed VGG-16 numbers (torchvision: 13 3x3 convs, 5 2x2/2 max pools, 3 dense layers).
VGG16_PARAMS = 138_357_544                         # torchvision's published count
VGG16_FC0 = 512 * 7 * 7 * 4096 + 4096              # 102,764,544
VGG16_FC0_GAP = 512 * 4096 + 4096                  # 2,101,248
# receptive field: +2 per conv times the jump, +1 per pool times the jump, jumps 1,2,4,8,16
VGG16_FIELD = 1 + 2 * (2 * 1 + 2 * 2 + 3 * 4 + 3 * 8 + 3 * 16) + (1 + 2 + 4 + 8 + 16)


def test_vgg16_classifier0_flattened_map_is_flagged_with_parameter_saving(vgg16_report):
    assert vgg16_report.summary.params == VGG16_PARAMS
    [finding] = [f for f in vgg16_report.findings if f.code == "AL501"]
    assert finding.layer == "classifier.0"
    data = finding.data
    assert (data["channels"], data["spatial"], data["positions"]) == (512, [7, 7], 49)
    assert (data["in_features"], data["out_features"]) == (25088, 4096)
    assert data["params"] == VGG16_FC0 == 102_764_544
    assert data["params_with_gap"] == VGG16_FC0_GAP == 2_101_248
    assert data["params_saved"] == VGG16_FC0 - VGG16_FC0_GAP == 100_663_296
    assert data["model_params"] == VGG16_PARAMS
    assert data["param_share"] == pytest.approx(102_764_544 / 138_357_544)
    assert "'classifier.0'" in finding.message and "102,764,544" in finding.message
    assert "49 positions (limit 1)" in finding.message


def test_vgg16_field_of_212_does_not_cover_224_input(vgg16_report):
    assert VGG16_FIELD == 212
    [finding] = [f for f in vgg16_report.findings if f.code == "AL503"]
    assert finding.layer == "avgpool"
    assert finding.data["receptive_field"] == [212, 212]
    assert finding.data["input"] == [224, 224]
    assert finding.data["min_coverage"] == pytest.approx(212 / 224)
    assert vgg16_report.summary.receptive_field.covers_input is False


def test_vgg16_tiling_pools_are_not_flagged(vgg16_report):
    assert not [f for f in vgg16_report.findings if f.code == "AL502"]


# --- hand-built graphs ------------------------------------------------------------------

def _pool(name, op, x, out, kernel, stride, pads=(0, 0), dilation=(1, 1)):
    return Layer(name, op, "Pool", out, (x,), kernel=kernel, stride=stride, pads_begin=pads, pads_end=pads,
                 dilation=dilation, in_channels=x[1], out_channels=x[1])


def _chain(*layers: Layer) -> Graph:
    g = Graph(model="<test>", inputs=[layers[0].name], outputs=[layers[-1].name], unsupported_ops={}, notes=[])
    for prev, layer in zip((None,) + layers[:-1], layers):
        g.add_node(layer.name, layer=layer)
        if prev is not None:
            g.add_edge(prev.name, layer.name, index=0)
    return g


def _only(code: str):
    return [r for r in discover_rules() if r.code == code]


def _one_pool_finding(layer: Layer):
    x = Layer("x", Op.INPUT, "input", layer.input_shapes[0])
    return lint_graph(_chain(x, layer), rules=_only("AL502")).findings


def test_dilated_pool_whose_holes_line_up_with_the_stride_is_flagged():
    # kernel 2, dilation 2 (span 3), stride 3 on 9: 3 windows read 0,2 | 3,5 | 6,8; 1,4,7 never
    pool = _pool("pool", Op.MAX_POOL, (1, 2, 9, 9), (1, 2, 3, 3), (2, 2), (3, 3), dilation=(2, 2))
    [finding] = _one_pool_finding(pool)
    assert finding.data["read_per_axis"] == [6, 6] and finding.data["gap_per_axis"] == [3, 3]
    assert finding.data["unread"] == 81 - 36 and finding.data["unread_fraction"] == pytest.approx(45 / 81)


def test_stride_gap_on_one_axis_only_is_flagged():
    # 1x3 window, stride (2, 3) on 8x9: rows 0,2,4,6 read (4 of 8), columns all read
    pool = _pool("pool", Op.AVG_POOL, (1, 2, 8, 9), (1, 2, 4, 3), (1, 3), (2, 3))
    [finding] = _one_pool_finding(pool)
    assert finding.data["read_per_axis"] == [4, 9] and finding.data["gap_per_axis"] == [4, 0]
    assert finding.data["unread"] == 72 - 36 and finding.data["unread_fraction"] == pytest.approx(0.5)


def test_padded_pool_counts_only_real_positions():
    # 1x1 window, stride 2, padding 1 on 5: 4 windows at -1,1,3,5 -> real positions 1,3 read
    pool = _pool("pool", Op.MAX_POOL, (1, 1, 5, 5), (1, 1, 4, 4), (1, 1), (2, 2), pads=(1, 1))
    [finding] = _one_pool_finding(pool)
    assert finding.data["read_per_axis"] == [2, 2] and finding.data["positions"] == 25
    assert finding.data["unread"] == 25 - 4


def test_pool_losing_only_the_end_edge_is_left_to_al202():
    # 2x2 stride 2 on 5: windows read 0..3, position 4 is missed only because the grid stops
    assert not _one_pool_finding(_pool("pool", Op.MAX_POOL, (1, 1, 5, 5), (1, 1, 2, 2), (2, 2), (2, 2)))


def test_tiling_and_overlapping_pools_pass():
    assert not _one_pool_finding(_pool("pool", Op.AVG_POOL, (1, 1, 8, 8), (1, 1, 4, 4), (2, 2), (2, 2)))
    assert not _one_pool_finding(_pool("pool", Op.MAX_POOL, (1, 1, 8, 8), (1, 1, 4, 4), (3, 3), (2, 2),
                                       pads=(1, 1)))


def test_flatten_through_activation_reaches_dense_and_counts_bias():
    x = Layer("x", Op.INPUT, "input", (1, 4, 3, 3))
    flat = Layer("flat", Op.RESHAPE, "Reshape", (1, 36), ((1, 4, 3, 3),))
    act = Layer("act", Op.ACTIVATION, "Relu", (1, 36), ((1, 36),))
    fc = Layer("fc", Op.LINEAR, "Gemm", (1, 5), ((1, 36),), in_channels=36, out_channels=5,
               param_shapes=((5, 36), (5,)))
    g = _chain(x, flat, act, fc)
    [head] = flattened_dense_heads(g, costs(g))
    assert (head.flatten, head.dense, head.positions) == ("flat", "fc", 9)
    assert (head.params, head.bias, head.params_with_gap) == (36 * 5 + 5, 5, 4 * 5 + 5)
    [finding] = lint_graph(g, rules=_only("AL501")).findings
    assert finding.layer == "fc" and finding.data["params_saved"] == 36 * 5 - 4 * 5


def test_dense_without_bias_and_pooled_map_of_one_position():
    x = Layer("x", Op.INPUT, "input", (1, 6, 1, 1))
    flat = Layer("flat", Op.FLATTEN, "Flatten", (1, 6), ((1, 6, 1, 1),))
    fc = Layer("fc", Op.LINEAR, "MatMul", (1, 3), ((1, 6),), in_channels=6, out_channels=3,
               param_shapes=((6, 3),))
    g = _chain(x, flat, fc)
    [head] = flattened_dense_heads(g, costs(g))
    assert head.positions == 1 and head.bias == 0
    assert not lint_graph(g, rules=_only("AL501")).findings  # 1 position <= default limit 1


def _conv(name, x, out, stride=1):
    return Layer(name, Op.CONV, "Conv", out, (x,), kernel=(3, 3), stride=(stride, stride), pads_begin=(1, 1),
                 pads_end=(1, 1), dilation=(1, 1), in_channels=x[1], out_channels=out[1],
                 param_shapes=((out[1], x[1], 3, 3),))


def test_dense_prediction_network_has_no_global_decision_to_check():
    # a segmentation-style net: field 5 on a 32x32 input, but the output stays spatial
    x = Layer("x", Op.INPUT, "input", (1, 3, 32, 32))
    a = _conv("a", x.output_shape, (1, 4, 32, 32))
    b = _conv("b", a.output_shape, (1, 2, 32, 32))
    g = _chain(x, a, b)
    assert input_coverage(g, receptive_fields(g)) is None
    assert not lint_graph(g, rules=_only("AL503")).findings


def test_non_square_input_reports_the_worse_axis():
    # one 3x3 conv on 3x12 (H x W): field 3x3 covers H fully, W at 3/12
    x = Layer("x", Op.INPUT, "input", (1, 1, 3, 12))
    a = _conv("a", x.output_shape, (1, 2, 3, 12))
    gap = Layer("gap", Op.GLOBAL_POOL, "GlobalAveragePool", (1, 2, 1, 1), ((1, 2, 3, 12),))
    g = _chain(x, a, gap)
    [finding] = lint_graph(g, rules=_only("AL503")).findings
    assert finding.layer == "a" and finding.data["head"] == "gap"
    assert finding.data["coverage"] == [1.0, 0.25] and finding.data["min_coverage"] == 0.25



def test_channel_gate_expanded_to_the_map_keeps_the_field_and_al503_judges_the_last_map():
    """timm's ECA gate (``x * y.expand_as(x)``, as in eca_nfnet and the ts-ResNets) between two 3x3 convs.

    The gate (global mean, 1-D conv across channels, sigmoid) is read back onto the map through
    ``expand_as``, whose second operand only gives the shape: the map keeps its field, 3 then 5
    after ``b``, with global context, and AL503 sits on ``b`` (5/32), the last map before the
    global pooling, not on the layer before the first gate.
    """
    from torch import nn

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
            self.gate, self.fc = nn.Conv1d(1, 1, 3, padding=1, bias=False), nn.Linear(8, 2)

        def forward(self, x):
            x = self.a(x)
            y = self.gate(x.mean((2, 3)).view(x.shape[0], 1, -1)).view(x.shape[0], -1, 1, 1).sigmoid()
            return self.fc(self.b(x * y.expand_as(x)).mean((2, 3)))

    report = lint(Gated(), input_shapes=(1, 3, 32, 32), select=["AL503"])
    gated = next(row for row in report.layers if row.op == "mul" and row.output_shape == (1, 8, 32, 32))
    assert tuple(gated.receptive_field) == (3, 3) and gated.global_context and not gated.rf_global
    [finding] = report.findings
    assert finding.layer == "b" and finding.data["receptive_field"] == [5, 5] and finding.data["global_context"]
    assert finding.data["min_coverage"] == 5 / 32

# --- the same findings through both frontends -------------------------------------------------

def _pooling_specs():
    file = Path(__file__).resolve().parent.parent / "fixtures" / "specs" / "pooling.py"
    spec = importlib.util.spec_from_file_location("fixture_specs_pooling_for_tests", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MODELS


def _al5(report, ignore=()):
    return sorted((f.code, f.layer, {k: v for k, v in f.to_dict()["data"].items() if k not in ignore})
                  for f in report.findings)


@pytest.mark.parametrize("name", sorted(_pooling_specs()))
def test_torch_module_and_onnx_exports_give_equal_findings(name):
    models = Path(__file__).resolve().parent.parent / "fixtures" / "models"
    module, shape = _pooling_specs()[name]()
    config = Config(select=("AL5",))
    direct = lint(module.eval(), config, input_shapes=shape)
    legacy = lint(str(models / f"{name}_legacy.onnx"), config)
    dynamo = lint(str(models / f"{name}_dynamo.onnx"), config)
    assert _al5(direct) == _al5(legacy)
    # the dynamo exporter turns nn.Flatten into a Reshape: only the head's op name differs
    assert _al5(direct, ignore={"head_op"}) == _al5(dynamo, ignore={"head_op"})
