"""MACs and weights of real torchvision CNNs, layer by layer, against torch's own FlopCounterMode.

Each model is exported with both exporters (cached per session by the ``zoo`` fixture in
``conftest.py``). FlopCounterMode counts convolutions and matrix products only, FLOPs = 2 x
MACs, which is archlint's headline MAC convention; torchvision's published GFLOPS are the
same MACs in units of 1e9.
"""

from __future__ import annotations

import math

import pytest

import archlint
from archlint.export import EXPORTERS, export_onnx
from archlint.frontends import load_graph

from conftest import ZOO, import_torchvision

CASES = [pytest.param(name, exporter, id=f"{name}-{exporter}") for name in ZOO for exporter in EXPORTERS]

_reports: dict = {}


def _report(model, exporter):
    key = (model.name, exporter)
    if key not in _reports:
        _reports[key] = archlint.lint(model.paths[exporter])
    return _reports[key]


def _weighted_rows(report):
    return {row.name: row for row in report.layers if row.op in ("conv", "conv_transpose", "linear")}


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_every_conv_and_linear_layer_has_the_macs_flop_counter_counts(zoo, name, exporter):
    model = zoo[name]
    rows = _weighted_rows(_report(model, exporter))
    # every torch conv/linear module is one archlint layer named by its module path, and back
    assert set(rows) == set(model.weights)
    wrong = {n: (2 * row.macs, model.flops[n]) for n, row in rows.items() if 2 * row.macs != model.flops[n]}
    assert not wrong, f"layers whose 2 x MACs differ from FlopCounterMode: {wrong}"


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_total_macs_equal_flop_counter_and_published_gflops(zoo, name, exporter):
    model = zoo[name]
    report = _report(model, exporter)
    assert 2 * report.summary.macs == model.total_flops
    assert report.summary.macs == sum(row.macs for row in report.layers)
    decimals = len(model.published_gflops.split(".")[1])
    assert f"{report.summary.macs / 1e9:.{decimals}f}" == model.published_gflops


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_conv_and_linear_weight_elements_match_module_weights(zoo, name, exporter):
    model = zoo[name]
    graph = load_graph(model.paths[exporter])
    rows = _weighted_rows(_report(model, exporter))
    for layer_name, numel in model.weights.items():
        layer = graph.layer(layer_name)
        assert layer.param_shapes, f"{layer_name}: no weight found"
        assert math.prod(layer.param_shapes[0]) == numel, layer_name
        # BatchNorm folding may add a bias of one value per output channel; nothing else
        module = model.modules[layer_name]
        out = module.out_channels if hasattr(module, "out_channels") else module.out_features
        assert rows[layer_name].params in (numel, numel + out), layer_name


def test_windowed_attention_legacy_export_folds_shape_arithmetic_over_many_rounds(zoo):
    """Swin-T's legacy export computes its window reshapes and pads from shapes that are known
    only after earlier reshapes are resolved: many rounds of folding. Its MACs then equal
    FlopCounterMode's (and torchvision's published 4.49 GFLOPS)."""
    torchvision = import_torchvision()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    path = zoo.folder / "swin_t_legacy.onnx"
    torch.manual_seed(0)
    model = torchvision.models.swin_t().eval()
    x = torch.randn(1, 3, 224, 224)
    if not path.exists():
        export_onnx(model, x, path, "legacy")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    report = archlint.lint(path)
    assert report.summary.macs * 2 == counter.get_total_flops()
    assert f"{report.summary.macs / 1e9:.2f}" == "4.49"
