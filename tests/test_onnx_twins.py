"""Quantized, half-precision and opset-converted twins report exactly like the float model.

Twins of torchvision ResNet-18 and MobileNetV2 and of the example fixture (which has
findings) are built once per session with onnxruntime's quantizer, onnxconverter-common's
float16 converter and ``onnx.version_converter`` (``fixtures/twins.py``). Each must give
its float source's MACs, parameters, summary receptive field and findings (code and
layer), and the same weighted and pooling layers (names, MACs, parameters, receptive
fields). Static quantization drops the ReLU after each conv (the quantization range
clamps at zero instead), so activation layers are not compared.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import archlint

from conftest import ROOT, _load_script, import_torchvision

FORMS = ("qdq", "qoperator", "dynamic", "float16", "opset13", "opset21")
MODELS = ("resnet18", "mobilenet_v2", "example_cnn")
#: Layers whose numbers a twin must reproduce: everything with weights or a window.
COMPARED_OPS = {"conv", "conv_transpose", "linear", "matmul", "recurrent", "max_pool", "avg_pool", "global_pool"}

_built: dict[str, dict[str, Path]] = {}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """model name -> {form: path}, built on first request."""
    twins_script = _load_script(ROOT / "fixtures" / "twins.py", "fixture_twins_for_tests")
    cache = os.environ.get("ARCHLINT_TEST_CACHE")
    folder = Path(cache) if cache else tmp_path_factory.mktemp("twins")
    folder.mkdir(parents=True, exist_ok=True)

    def get(name: str) -> dict[str, Path]:
        if name not in _built:
            import torch

            torch.manual_seed(0)
            if name == "example_cnn":
                module, shape = load_example()
            else:
                module, shape = getattr(import_torchvision().models, name)(), (1, 3, 224, 224)
            _built[name] = twins_script.build_twins(module, shape, folder, name)
        return _built[name]

    return get


def load_example():
    return _load_script(ROOT / "fixtures" / "specs" / "example.py", "fixture_specs_example_for_twins").example_cnn()


_reports: dict[Path, archlint.Report] = {}


def report_of(path: Path):
    if path not in _reports:
        _reports[path] = archlint.lint(path)
    return _reports[path]


def layer_numbers(report) -> dict[str, tuple]:
    return {row.name: (row.op, row.macs, row.params, row.receptive_field, row.effective_stride,
                       row.effective_padding) for row in report.layers if row.op in COMPARED_OPS}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("model", MODELS)
def test_twin_reports_exactly_like_its_float_source(twins, model, form):
    paths = twins(model)
    source, twin = report_of(paths["source"]), report_of(paths[form])
    assert not twin.summary.unsupported_ops
    assert (twin.summary.macs, twin.summary.params) == (source.summary.macs, source.summary.params)
    assert layer_numbers(twin) == layer_numbers(source)
    field, twin_field = source.summary.receptive_field, twin.summary.receptive_field
    assert (twin_field.size, twin_field.stride, twin_field.padding) == (field.size, field.stride, field.padding)
    assert [(f.code, f.layer) for f in twin.findings] == [(f.code, f.layer) for f in source.findings]


@pytest.mark.parametrize("model", MODELS)
def test_float_sources_have_torchs_own_macs(twins, model):
    """The sources the twins are compared with are right themselves (FlopCounterMode = 2 x MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    module, shape = load_example() if model == "example_cnn" else (
        getattr(import_torchvision().models, model)(), (1, 3, 224, 224))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(torch.randn(*shape))
    assert 2 * report_of(twins(model)["source"]).summary.macs == counter.get_total_flops()


def test_example_twins_keep_the_example_findings(twins):
    codes = {f.code for f in report_of(twins("example_cnn")["qoperator"]).findings}
    assert {"AL101", "AL201", "AL302", "AL501"} <= codes


@pytest.mark.parametrize("form", ("qdq", "qoperator", "dynamic"))
def test_quantized_layers_name_their_quantized_op(twins, form):
    source_ops = {row.source_op for row in report_of(twins("resnet18")[form]).layers if row.op == "conv"}
    expected = {"qdq": {"Conv"}, "qoperator": {"QLinearConv"}, "dynamic": {"ConvInteger"}}[form]
    assert source_ops == expected
