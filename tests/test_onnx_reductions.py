"""Comparisons, partial reductions and fixed-index gathers from real exports (tf2onnx's one-hot,
decomposed LayerNorm and softmax statistics, a recurrent state split into h and c) are understood."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

import archlint

from conftest import make_model, weight


def _reduce(op: str, axes, keepdims: int = 1, as_input: bool = True):
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    inits = [weight("w", (4, 3, 3, 3))]
    if as_input:
        node = helper.make_node(op, ["c", "axes"], ["y"], name="reduce", keepdims=keepdims)
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    else:
        node = helper.make_node(op, ["c"], ["y"], name="reduce", keepdims=keepdims, axes=axes)
    return make_model([conv, node], {"x": [1, 3, 8, 8]}, {"y": None}, inits, opset=18 if as_input else 17)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMean", "ReduceSumSquare", "ReduceLogSumExp"])
def test_reduction_over_channels_keeps_the_receptive_field(op):
    report = archlint.lint(_reduce(op, [1]))
    row = report.layer("reduce")
    assert row.op == "norm" and row.output_shape == (1, 1, 8, 8)
    assert row.receptive_field == report.layer("conv").receptive_field == (3, 3)
    assert not report.summary.unsupported_ops


def test_reduction_over_every_spatial_axis_is_global_pooling():
    row = archlint.lint(_reduce("ReduceMean", [2, 3], keepdims=0, as_input=False)).layer("reduce")
    assert row.op == "global_pool" and row.rf_global


def test_reduction_over_one_spatial_axis_stays_not_understood():
    report = archlint.lint(_reduce("ReduceMax", [2]))
    assert report.layer("reduce").op == "other"
    assert report.summary.unsupported_ops == {"ReduceMax": 1}


def test_reduction_of_a_vector_is_per_row_statistics():
    node = helper.make_node("ReduceMax", ["logits"], ["m"], name="max", axes=[1], keepdims=0)
    gemm = helper.make_node("Gemm", ["v", "fc"], ["logits"], name="fc")
    report = archlint.lint(make_model([gemm, node], {"v": [2, 16]}, {"m": None}, [weight("fc", (16, 5))]))
    assert report.layer("max").op == "norm" and not report.summary.unsupported_ops
    assert report.summary.macs == 2 * 16 * 5


@pytest.mark.parametrize("op", ["Equal", "Greater", "Where"])
def test_comparisons_and_selection_are_elementwise(op):
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    inputs = ["mask", "c", "zero"] if op == "Where" else ["c", "zero"]
    nodes = [conv, helper.make_node("Greater", ["c", "zero"], ["mask"], name="gt")] if op == "Where" else [conv]
    nodes.append(helper.make_node(op, inputs, ["y"], name="cmp"))
    model = make_model(nodes, {"x": [1, 3, 8, 8]}, {"y": None},
                       [weight("w", (4, 3, 3, 3)), weight("zero", (1,), 0.0)])
    report = archlint.lint(model)
    row = report.layer("cmp")
    assert row.op == "mul" and row.other_category == "elementwise" and row.other_ops == 4 * 8 * 8
    assert row.receptive_field == (3, 3)
    assert not report.summary.unsupported_ops


def test_gather_at_constant_indices_moves_data():
    # a recurrent state (2, batch, hidden) split into h and c, then each used
    nodes = [helper.make_node("Gather", ["state", "zero"], ["h"], name="h", axis=0),
             helper.make_node("Gather", ["state", "one"], ["c"], name="c", axis=0),
             helper.make_node("Add", ["h", "c"], ["y"], name="sum")]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array(1, np.int64), "one")]
    report = archlint.lint(make_model(nodes, {"state": [2, 1, 16]}, {"y": None}, inits))
    assert report.layer("h").op == report.layer("c").op == "reshape"
    assert report.layer("h").output_shape == (1, 16)
    assert not report.summary.unsupported_ops


def test_gather_by_data_dependent_indices_stays_not_understood():
    node = helper.make_node("Gather", ["x", "idx"], ["y"], name="pick", axis=1)
    model = make_model([node], {"x": [1, 3, 8, 8], "idx": [2]}, {"y": None})
    model.graph.input[1].type.tensor_type.elem_type = 7  # int64 indices from the caller
    report = archlint.lint(model)
    assert report.summary.unsupported_ops == {"Gather": 1}
