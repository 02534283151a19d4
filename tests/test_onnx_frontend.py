"""The ONNX frontend: layer naming and sources from both exporters, padding modes, unknown ops
and dynamic shapes."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import archlint
from archlint.errors import ArchlintError, ShapeError
from archlint.graph import Source

from conftest import SPECS, fixture_path, import_torchvision, load_specs, make_model, weight


# --- naming and sources -------------------------------------------------------------------

@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_layers_are_named_by_module_path(zoo, exporter):
    report = archlint.lint(zoo["resnet50"].paths[exporter])
    names = {row.name: row.op for row in report.layers}
    assert names["conv1"] == "conv"
    assert names["layer2.0.downsample.0"] == "conv"
    assert names["fc"] == "linear"
    # Bottleneck calls its one ReLU module three times: later calls get _1, _2
    assert names["layer1.0.relu"] == names["layer1.0.relu_1"] == names["layer1.0.relu_2"] == "activation"
    assert names["maxpool"] == "max_pool"


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[occurrence - 1]


def test_dynamo_exports_carry_source_file_and_line(zoo):
    import_torchvision()
    from torchvision.models import resnet

    report = archlint.lint(zoo["resnet50"].paths["dynamo"])
    lines, first = inspect.getsourcelines(resnet.Bottleneck.forward)
    text = "".join(lines)
    second_relu = first - 1 + _line_of(text, "out = self.relu(out)", 2)
    assert report.layer("layer1.0.relu_1").source == Source(resnet.__file__, second_relu)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_sources_point_at_the_calling_line_of_the_model(exporter):
    report = archlint.lint(fixture_path(f"core_chain_{exporter}.onnx"))
    if exporter == "legacy":  # the legacy exporter keeps no stack traces
        assert all(row.source is None for row in report.layers)
        return
    spec = (SPECS / "core.py").read_text()
    conv1 = _line_of(spec, "x = torch.relu(self.conv1(x))")
    pool = _line_of(spec, "x = self.pool(x)")
    assert Path(report.layer("conv1").source.file).name == "core.py"
    assert report.layer("conv1").source.line == conv1
    assert (Path(report.layer("pool").source.file).name, report.layer("pool").source.line) == ("core.py", pool)


def _conv_view(report):
    return {row.name: (row.macs, row.receptive_field, row.effective_stride, row.effective_padding,
                       row.output_shape)
            for row in report.layers if row.op in ("conv", "conv_transpose")}


@pytest.mark.parametrize("fixture", ["core_chain", "core_branches", "core_updown"])
def test_exporters_agree_on_conv_layers_of_fixtures(fixture):
    legacy = archlint.lint(fixture_path(f"{fixture}_legacy.onnx"))
    dynamo = archlint.lint(fixture_path(f"{fixture}_dynamo.onnx"))
    assert _conv_view(legacy) == _conv_view(dynamo)
    assert legacy.summary.macs == dynamo.summary.macs


def test_exporters_agree_on_conv_layers_of_resnet50(zoo):
    model = zoo["resnet50"]
    legacy, dynamo = (archlint.lint(model.paths[e]) for e in ("legacy", "dynamo"))
    assert _conv_view(legacy) == _conv_view(dynamo)
    assert len(_conv_view(legacy)) == 53


# --- padding modes ------------------------------------------------------------------------

def _autopad_model(mode: str):
    # 9 pixels, kernel 4, stride 2: SAME gives ceil(9/2) = 5 outputs and 3 pixels of padding,
    # 1 before + 2 after (SAME_UPPER) or 2 before + 1 after (SAME_LOWER); VALID gives 3 outputs
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[4, 4], strides=[2, 2],
                            auto_pad=mode)
    return make_model([conv], {"x": [1, 2, 9, 9]}, {"y": None}, [weight("w", (3, 2, 4, 4))])


@pytest.mark.parametrize(("mode", "out", "begin", "end"), [
    ("SAME_UPPER", 5, 1, 2), ("SAME_LOWER", 5, 2, 1), ("VALID", 3, 0, 0)])
def test_auto_pad_modes_give_onnx_spec_shapes_and_padding(mode, out, begin, end):
    from onnx.reference import ReferenceEvaluator

    model = _autopad_model(mode)
    x = np.random.default_rng(0).standard_normal((1, 2, 9, 9)).astype(np.float32)
    (reference,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert reference.shape == (1, 3, out, out)  # the ONNX reference agrees with the hand count
    report = archlint.lint(model)
    row = report.layer("conv")
    assert row.output_shape == (1, 3, out, out)
    assert tuple(row.effective_padding) == (begin, begin)
    assert tuple(row.receptive_field) == (4, 4) and tuple(row.effective_stride) == (2, 2)
    assert row.macs == out * out * 3 * 2 * 4 * 4
    from archlint.frontends import load_graph
    layer = load_graph(model).layer("conv")
    assert (layer.pads_begin, layer.pads_end) == ((begin, begin), (end, end))


# --- unknown ops and dynamic shapes ----------------------------------------------------------------

def test_custom_domain_and_unknown_ops_are_listed_as_unsupported():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Frobnicate", ["c"], ["f"], name="frob", domain="com.example"),
             helper.make_node("Conv", ["f", "w2"], ["y"], name="conv2", kernel_shape=[1, 1]),
             helper.make_node("Frobnicate", ["y"], ["z"], name="frob2", domain="com.example"),
             helper.make_node("NoSuchOp", ["y"], ["u"], name="mystery", domain="com.example")]
    model = make_model(nodes, {"x": [1, 3, 8, 8]}, {"z": None, "u": None},
                       [weight("w", (4, 3, 3, 3)), weight("w2", (4, 4, 1, 1))], domains=["com.example"])
    model.graph.value_info.append(helper.make_tensor_value_info("f", 1, [1, 4, 8, 8]))
    report = archlint.lint(model)
    assert report.summary.unsupported_ops == {"com.example::Frobnicate": 2, "com.example::NoSuchOp": 1}
    assert report.to_dict()["summary"]["unsupported_ops"] == {"com.example::Frobnicate": 2,
                                                              "com.example::NoSuchOp": 1}
    assert report.summary.macs == 8 * 8 * 4 * 3 * 9 + 8 * 8 * 4 * 4


def _dynamic_model(dims):
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 1, 1, 1])
    return make_model([conv], {"x": dims}, {"y": None}, [weight("w", (4, 3, 3, 3))])


def test_dynamic_batch_dimension_needs_input_shape_and_the_error_shows_an_example():
    with pytest.raises(ShapeError, match=r"axis 0 \('N'\).*--input-shape x:1,3,16,16"):
        archlint.lint(_dynamic_model(["N", 3, 16, 16]))
    report = archlint.lint(_dynamic_model(["N", 3, 16, 16]), input_shapes=(1, 3, 16, 16))
    assert report.layer("conv").output_shape == (1, 4, 8, 8)


def test_dynamic_spatial_dimension_needs_input_shape():
    with pytest.raises(ShapeError, match="--input-shape"):
        archlint.lint(_dynamic_model([1, 3, "H", "W"]))


def test_dynamic_spatial_dimension_with_input_shape_works():
    report = archlint.lint(_dynamic_model(["N", 3, "H", "W"]), input_shapes=(2, 3, 20, 12))
    assert report.layer("conv").output_shape == (2, 4, 10, 6)
    assert report.layer("conv").macs == 2 * 4 * 10 * 6 * 3 * 9


def test_legacy_export_with_dynamic_axes_gets_correct_shapes_from_input_shape():
    import torch
    path = fixture_path("core_dynamic_axes.onnx")
    with pytest.raises(ArchlintError):
        archlint.lint(path)
    module = load_specs().shuffle_module().eval()
    shapes = {}

    def record(name):
        def hook(mod, inputs, output):
            shapes[name] = tuple(output.shape)
        return hook

    for name in ("conv1", "conv2", "conv3"):
        getattr(module, name).register_forward_hook(record(name))
    with torch.no_grad():
        module(torch.randn(1, 3, 40, 48))  # not the 32x32 of the export
    report = archlint.lint(path, input_shapes=(1, 3, 40, 48))
    for name, shape in shapes.items():
        assert report.layer(name).output_shape == shape, name
        weight_ = getattr(module, name).weight
        assert report.layer(name).macs == int(np.prod(shape)) * weight_.shape[1] * 9

