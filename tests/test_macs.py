"""MACs of single ops against FlopCounterMode on the equivalent torch op (FLOPs = 2 x MACs)
or hand arithmetic."""

from __future__ import annotations

import pytest
from onnx import helper

import archlint

from conftest import make_model, weight


def _torch_macs(fn, *tensors) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*tensors)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def _conv_macs(op, x_shape, w_shape, **attrs):
    node = helper.make_node(op, ["x", "w"], ["y"], name="layer", **attrs)
    report = archlint.lint(make_model([node], {"x": list(x_shape)}, {"y": None}, [weight("w", w_shape)]))
    return report.layer("layer")


CONVS = {
    # name: (x shape, weight shape, onnx attributes, torch keyword arguments)
    "grouped": ((1, 8, 16, 16), (12, 2, 3, 3), dict(group=4, pads=[1, 1, 1, 1]), dict(groups=4, padding=1)),
    "depthwise": ((1, 8, 15, 15), (8, 1, 3, 3), dict(group=8, strides=[2, 2], pads=[1, 1, 1, 1]),
                  dict(groups=8, stride=2, padding=1)),
    "dilated": ((1, 4, 16, 16), (6, 4, 3, 3), dict(dilations=[2, 2], pads=[2, 2, 2, 2]),
                dict(dilation=2, padding=2)),
    "rectangular": ((2, 3, 17, 11), (5, 3, 1, 7), dict(strides=[2, 1], pads=[0, 3, 0, 3]),
                    dict(stride=(2, 1), padding=(0, 3))),
}


@pytest.mark.parametrize("case", list(CONVS))
def test_conv_macs_match_flop_counter(case):
    import torch
    x_shape, w_shape, attrs, kwargs = CONVS[case]
    row = _conv_macs("Conv", x_shape, w_shape, kernel_shape=list(w_shape[2:]), **attrs)
    x, w = torch.randn(*x_shape), torch.randn(*w_shape)
    assert row.output_shape == tuple(torch.nn.functional.conv2d(x, w, **kwargs).shape)
    assert row.macs == _torch_macs(lambda a, b: torch.nn.functional.conv2d(a, b, **kwargs), x, w)


def test_depthwise_conv_macs_by_hand():
    # 8 channels, one 3x3 filter each, 8x8 outputs: 8 * 8 * 8 * 9
    row = _conv_macs("Conv", (1, 8, 15, 15), (8, 1, 3, 3), kernel_shape=[3, 3], group=8, strides=[2, 2],
                     pads=[1, 1, 1, 1])
    assert row.macs == 8 * 8 * 8 * 9


@pytest.mark.parametrize(("groups", "stride", "padding", "output_padding"), [(1, 2, 1, 1), (2, 2, 0, 0), (1, 3, 2, 1)])
def test_conv_transpose_macs_match_flop_counter(groups, stride, padding, output_padding):
    import torch
    x_shape, w_shape = (1, 4, 7, 9), (4, 6 // groups, 3, 3)
    row = _conv_macs("ConvTranspose", x_shape, w_shape, kernel_shape=[3, 3], group=groups,
                     strides=[stride, stride], pads=[padding] * 4, output_padding=[output_padding] * 2)
    x, w = torch.randn(*x_shape), torch.randn(*w_shape)

    def conv_t(a, b):
        return torch.nn.functional.conv_transpose2d(a, b, stride=stride, padding=padding,
                                                    output_padding=output_padding, groups=groups)

    assert row.output_shape == tuple(conv_t(x, w).shape)
    assert row.macs == _torch_macs(conv_t, x, w)
    # hand count: every input pixel is multiplied by a k x k x (C_out / groups) slice of the weight
    assert row.macs == 4 * 7 * 9 * (6 // groups) * 9


@pytest.mark.parametrize(("trans_a", "trans_b"), [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_gemm_macs_follow_trans_a_and_trans_b(trans_a, trans_b):
    import torch
    m, k, n = 3, 10, 7
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    node = helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm", transA=trans_a, transB=trans_b)
    report = archlint.lint(make_model([node], {"a": list(a_shape)}, {"y": None}, [weight("b", b_shape)]))
    row = report.layer("gemm")
    assert row.op == "linear" and row.output_shape == (m, n)
    a, b = torch.randn(*a_shape), torch.randn(*b_shape)
    expected = _torch_macs(lambda p, q: (p.T if trans_a else p) @ (q.T if trans_b else q), a, b)
    assert row.macs == expected == m * k * n


def test_gemm_between_two_data_inputs_is_a_matmul():
    node = helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm", transA=1)
    report = archlint.lint(make_model([node], {"a": [10, 3], "b": [10, 7]}, {"y": None}))
    row = report.layer("gemm")
    assert row.op == "matmul" and row.macs == 3 * 10 * 7


def test_batched_matmul_macs_match_flop_counter():
    import torch
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")
    report = archlint.lint(make_model([node], {"a": [2, 3, 5, 7], "b": [2, 3, 7, 4]}, {"y": None}))
    row = report.layer("mm")
    assert row.output_shape == (2, 3, 5, 4)
    a, b = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 7, 4)
    assert row.macs == _torch_macs(torch.matmul, a, b) == 2 * 3 * 5 * 4 * 7


def test_matmul_with_broadcast_weight_counts_every_batch():
    import torch
    node = helper.make_node("MatMul", ["a", "w"], ["y"], name="proj")
    report = archlint.lint(make_model([node], {"a": [2, 6, 5, 8]}, {"y": None}, [weight("w", (8, 3))]))
    row = report.layer("proj")
    assert row.op == "linear" and row.output_shape == (2, 6, 5, 3)
    a, w = torch.randn(2, 6, 5, 8), torch.randn(8, 3)
    assert row.macs == _torch_macs(torch.matmul, a, w) == 2 * 6 * 5 * 3 * 8


@pytest.mark.parametrize(("equation", "a", "b"), [("bhid,bhjd->bhij", (2, 4, 7, 16), (2, 4, 9, 16)),
                                                  ("bhij,bhjd->bhid", (2, 4, 7, 9), (2, 4, 9, 16)),
                                                  ("ij,jk", (5, 6), (6, 3))])
def test_einsum_counts_like_the_matrix_products_it_performs(equation, a, b):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    class Einsum(torch.nn.Module):
        def forward(self, x, y):
            return torch.einsum(equation, x, y)

    x, y = torch.randn(*a), torch.randn(*b)
    with FlopCounterMode(display=False) as counter:
        Einsum()(x, y)
    report = archlint.lint(Einsum(), example_inputs=(x, y))
    assert report.summary.macs * 2 == counter.get_total_flops() > 0
    assert not report.summary.unsupported_ops


def test_onnx_einsum_is_a_matrix_product_and_three_operands_stay_unsupported():
    from onnx import TensorProto, helper

    def model(equation, shapes):
        names = [f"in{i}" for i in range(len(shapes))]
        graph = helper.make_graph([helper.make_node("Einsum", names, ["out"], equation=equation)], "g",
                                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes)],
                                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    two = archlint.lint(model("bhid,bhjd->bhij", [(1, 8, 49, 32), (1, 8, 49, 32)]))
    assert two.summary.macs == 1 * 8 * 49 * 49 * 32  # every output element sums over d
    three = archlint.lint(model("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]))
    assert three.summary.macs == 0 and three.summary.unsupported_ops == {"Einsum": 1}
