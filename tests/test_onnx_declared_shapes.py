"""Declared shapes are hints: stale or contradicting ones are dropped and noted, ``-1`` sizes are
dynamic (PaddlePaddle), and only a graph that is inconsistent by itself stops the run."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import archlint
from archlint.errors import ArchlintError, ShapeError

from conftest import make_model, run_cli, save, weight


def _conv_reshape(declared_out, input_dims=(1, 3, 8, 8)):
    """Conv 3->4 (3x3, pad 1) then Reshape to (N, 4, H*W): the graph output declares ``declared_out``."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["c", "target"], ["y"], name="flat")]
    target = numpy_helper.from_array(np.array([0, 4, -1], dtype=np.int64), "target")
    return make_model(nodes, {"x": list(input_dims)}, {"y": declared_out}, [weight("w", (4, 3, 3, 3)), target])


def test_stale_output_rank_is_dropped_and_noted():
    # like a PyTorch 1.9 export: the output declares rank 2 where its own Reshape yields rank 3
    report = archlint.lint(_conv_reshape([1, 256]))
    assert report.layer("conv").output_shape == (1, 4, 8, 8)
    assert report.layer("conv").macs == 4 * 8 * 8 * 3 * 9
    notes = [n for n in report.summary.notes if "declared shapes" in n]
    assert len(notes) == 1
    assert "'y' declared [1,256], inferred [1,4,64]" in notes[0]


def test_declared_shapes_that_contradict_the_pinned_input_are_dropped():
    model = _conv_reshape([1, 4, 64], input_dims=("N", 3, "H", "W"))
    model.graph.value_info.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 8, 8]))
    report = archlint.lint(model, input_shapes=(2, 3, 10, 6))
    assert report.layer("conv").output_shape == (2, 4, 10, 6)
    assert report.layer("conv").macs == 2 * 4 * 10 * 6 * 3 * 9
    (note,) = [n for n in report.summary.notes if "declared shapes" in n]
    assert "'c' declared [1,4,8,8], inferred [2,4,10,6]" in note


def test_consistent_declared_shapes_leave_no_note():
    report = archlint.lint(_conv_reshape([1, 4, 64]))
    assert not [n for n in report.summary.notes if "declared" in n]


def test_minus_one_sizes_in_declared_shapes_are_dynamic_not_contradictions():
    model = _conv_reshape([-1, 4, -1], input_dims=(1, 3, 8, 8))
    model.graph.value_info.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [-1, 4, -1, -1]))
    report = archlint.lint(model)
    assert report.layer("conv").output_shape == (1, 4, 8, 8)
    assert not [n for n in report.summary.notes if "declared" in n]


def test_minus_one_input_size_asks_for_input_shape_with_an_example():
    model = _conv_reshape(None, input_dims=(-1, 3, 8, 8))
    model.graph.input[0].type.tensor_type.shape.dim[2].Clear()  # neither value nor name, as paddle2onnx writes
    with pytest.raises(ShapeError, match=r"axis 0 \(written as -1\) \(shape \?,3,\?,8\); .*"
                                         r"e\.g\. --input-shape x:1,3,SIZE,8$"):
        archlint.lint(model)
    report = archlint.lint(model, input_shapes=(1, 3, 6, 8))
    assert report.layer("conv").output_shape == (1, 4, 6, 8)


def test_size_zero_input_dimension_is_an_error():
    with pytest.raises(ArchlintError, match="size 0 at axis 1"):
        archlint.lint(_conv_reshape(None, input_dims=(1, 0, 8, 8)))


def test_graph_inconsistent_without_its_declared_shapes_still_fails():
    # adding 4 channels to 3 is wrong whatever the declared shapes say
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["y"], name="add")]
    model = make_model(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4, 8, 8]}, [weight("w", (4, 3, 3, 3))])
    with pytest.raises(ShapeError, match="shape inference failed.*Incompatible dimensions"):
        archlint.lint(model)


def test_cli_stale_declared_shape_reports_and_a_minus_one_input_ends_in_one_line(tmp_path):
    ok = save(_conv_reshape([1, 256]), tmp_path / "stale.onnx")
    result = run_cli("check", "--isolated", "--exit-zero", ok)
    assert result.returncode == 0, result.stderr
    assert "note: the file's declared shapes contradict" in result.stdout
    bad = save(_conv_reshape([-1, 4, -1], input_dims=(-1, 3, 8, 8)), tmp_path / "paddle.onnx")
    result = run_cli("check", "--isolated", bad)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("--input-shape x:1,3,8,8"), lines


def _reshape_to_values_of_the_input():
    """x reshaped to a target read from x's own first four values, then a conv: static input,
    unknown shape after the Reshape."""
    def ints(name, values):
        return numpy_helper.from_array(np.array(values, dtype=np.int64), name)
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["xf"]),
             helper.make_node("Slice", ["xf", "zero", "four"], ["first4"]),
             helper.make_node("Cast", ["first4"], ["target"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "target"], ["r"], name="by_values"),
             helper.make_node("Conv", ["r", "w"], ["y"], name="conv", kernel_shape=[1, 1])]
    return make_model(nodes, {"x": [1, 4, 8, 8]}, {"y": None},
                      [ints("flat", [-1]), ints("zero", [0]), ints("four", [4]), weight("w", (2, 4, 1, 1))])


def test_unknown_shape_behind_static_inputs_asks_for_value_info_not_input_shape():
    # every input is static by the time shapes are checked: --input-shape cannot help, the
    # shape of the layer whose argument is computed at run time can be declared
    with pytest.raises(ShapeError) as raised:
        archlint.lint(_reshape_to_values_of_the_input())
    message = str(raised.value)
    assert "starting at 'by_values' (Reshape)" in message and "--input-shape" not in message
    assert "record the output shape of 'by_values' in the model's value_info" in message
    model = _reshape_to_values_of_the_input()
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 8, 8]))
    assert archlint.lint(model).layer("conv").macs == 8 * 8 * 2 * 4
