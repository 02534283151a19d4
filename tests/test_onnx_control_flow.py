"""Models wrapped in control flow: a report that analyses one branch of an ``If`` and says which,
and never a silent undercount (ops inside ``Loop`` bodies are listed, and the totals are
called partial)."""

from __future__ import annotations

from onnx import TensorProto, helper

import archlint
from archlint.export import export_onnx

from conftest import make_model, run_cli, save, weight

X = {"x": [1, 3, 16, 16]}


def conv(name, x, y, cin, cout, k=3, stride=1):
    pad = k // 2
    node = helper.make_node("Conv", [x, f"{name}.weight"], [y], name=name, kernel_shape=[k, k],
                            strides=[stride, stride], pads=[pad] * 4)
    return node, weight(f"{name}.weight", (cout, cin, k, k))


def branch(name, convs, out):
    """A branch graph: convs in series from the outer ``x``; its output is called ``out``."""
    nodes, inits, prev = [], [], "x"
    for i, (cin, cout, k, stride) in enumerate(convs):
        node, w = conv(f"{name}{i}", prev, f"{name}{i}_out", cin, cout, k, stride)
        nodes.append(node)
        inits.append(w)
        prev = f"{name}{i}_out"
    nodes.append(helper.make_node("Identity", [prev], [out]))
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)


def conv_macs(convs, size=16):
    total = 0
    for cin, cout, k, stride in convs:
        size //= stride
        total += size * size * cout * cin * k * k
    return total


BIG = [(3, 8, 3, 1), (8, 8, 3, 2), (8, 16, 3, 1)]
SMALL = [(3, 16, 1, 2)]


def if_model(condition_nodes, condition_inits=(), then=BIG, otherwise=SMALL):
    node = helper.make_node("If", ["cond"], ["y"], name="gate", then_branch=branch("a", then, "ya"),
                            else_branch=branch("b", otherwise, "yb"))
    return make_model([*condition_nodes, node], X, {"y": None}, initializers=list(condition_inits))


def data_condition():
    return [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
            helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
            helper.make_node("Greater", ["total", "zero"], ["cond"])]


def test_if_on_an_input_value_analyses_the_larger_branch_and_says_so(tmp_path):
    report = archlint.lint(save(if_model(data_condition()), tmp_path / "m.onnx"))
    assert report.summary.macs == conv_macs(BIG)
    assert [r.name for r in report.layers if r.op == "conv"] == ["a0", "a1", "a2"]
    assert any("'gate': its condition depends on the input's values; archlint analyses its then_branch "
               "(4 nodes, the larger), not its else_branch (2 nodes)" in n for n in report.summary.notes)
    assert not report.summary.unsupported_ops  # the condition's arithmetic went with the If
    assert report.summary.receptive_field.size == (9, 9)


def test_if_with_a_constant_condition_analyses_the_branch_it_takes(tmp_path):
    false = helper.make_tensor("cond", TensorProto.BOOL, [], [False])
    report = archlint.lint(save(if_model([], [false]), tmp_path / "m.onnx"))
    assert report.summary.macs == conv_macs(SMALL)
    assert not any("'If'" in n for n in report.summary.notes)  # nothing to say: the branch is certain


def test_if_on_a_size_of_a_tensor_takes_the_branch_that_size_selects(tmp_path):
    """Legacy exports squeeze an axis only if its size is 1: Equal(Gather(Shape(t)), 1) -> If.
    Before inlining, the branches disagree on the rank, which strict inference refuses."""
    import numpy as np
    from onnx import numpy_helper

    stem, w = conv("stem", "x", "s", 3, 4, 3, 16)  # 1x4x1x1
    squeeze = helper.make_graph(
        [helper.make_node("Squeeze", ["s", "axes"], ["squeezed"])], "then", [],
        [helper.make_tensor_value_info("squeezed", TensorProto.FLOAT, None)])
    keep = helper.make_graph([helper.make_node("Identity", ["s"], ["kept"])], "else", [],
                             [helper.make_tensor_value_info("kept", TensorProto.FLOAT, None)])
    nodes = [stem, helper.make_node("Shape", ["s"], ["shape"]),
             helper.make_node("Gather", ["shape", "last"], ["size"]),
             helper.make_node("Equal", ["size", "one"], ["cond"]),
             helper.make_node("If", ["cond"], ["v"], name="squeeze_if_1", then_branch=squeeze, else_branch=keep),
             helper.make_node("Gemm", ["v", "fc.weight"], ["y"], transB=1)]
    inits = [w, numpy_helper.from_array(np.array(3, dtype=np.int64), "last"),
             numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
             numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"), weight("fc.weight", (5, 4))]
    report = archlint.lint(save(make_model(nodes, X, {"y": None}, inits), tmp_path / "m.onnx"))
    assert report.summary.macs == 4 * 3 * 9 + 4 * 5
    assert report.layer("fc").output_shape == (1, 5)
    assert not any("'If'" in n for n in report.summary.notes)


def test_if_inside_a_branch_is_inlined_too(tmp_path):
    inner = helper.make_node("If", ["cond"], ["ya"], name="inner", then_branch=branch("c", BIG, "yc"),
                             else_branch=branch("d", SMALL, "yd"))
    outer_then = helper.make_graph([inner], "outer_then", [], [helper.make_tensor_value_info("ya", TensorProto.FLOAT, None)])
    outer = helper.make_node("If", ["cond"], ["y"], name="outer", then_branch=outer_then,
                             else_branch=branch("b", SMALL, "yb"))
    model = make_model([*data_condition(), outer], X, {"y": None})
    report = archlint.lint(save(model, tmp_path / "m.onnx"))
    assert report.summary.macs == conv_macs(BIG)
    assert sum("depends on the input's values" in n for n in report.summary.notes) == 2


def test_recurrent_and_conv_layers_inside_an_if_are_counted(tmp_path):
    """The issue's case: an LSTM and a final conv inside the If were silently left out."""
    hidden, steps, features = 8, 16, 3 * 16
    lstm = [helper.make_node("Reshape", ["x", "seq_shape"], ["seq"]),
            helper.make_node("LSTM", ["seq", "W", "R"], ["h"], hidden_size=hidden),
            helper.make_node("Reshape", ["h", "map_shape"], ["map"]),
            helper.make_node("Conv", ["map", "head.weight"], ["ya"], kernel_shape=[1, 1])]
    import numpy as np
    from onnx import numpy_helper

    inits = [numpy_helper.from_array(np.array([steps, 1, features], dtype=np.int64), "seq_shape"),
             numpy_helper.from_array(np.array([1, hidden, 1, steps], dtype=np.int64), "map_shape"),
             weight("W", (1, 4 * hidden, features)), weight("R", (1, 4 * hidden, hidden)),
             weight("head.weight", (2, hidden, 1, 1))]
    then = helper.make_graph(lstm, "then", [], [helper.make_tensor_value_info("ya", TensorProto.FLOAT, None)], inits)
    node = helper.make_node("If", ["cond"], ["y"], name="gate", then_branch=then,
                            else_branch=branch("b", [(3, 2, 1, 1)], "yb"))
    report = archlint.lint(save(make_model([*data_condition(), node], X, {"y": None}), tmp_path / "m.onnx"))
    rows = {r.op: r for r in report.layers}
    assert rows["recurrent"].macs == steps * 4 * hidden * (features + hidden)
    assert rows["conv"].macs == 2 * hidden * steps
    assert report.summary.macs == steps * 4 * hidden * (features + hidden) + 2 * hidden * steps


def test_weights_inside_a_branch_are_never_read(tmp_path):
    """A whole network inside an If: its weights are skipped like the main graph's."""
    wide = [(3, 256, 3, 1), (256, 256, 3, 1)]  # 600k weights, 2.4 MB
    path = save(if_model(data_condition(), then=wide), tmp_path / "m.onnx")
    from archlint.frontends.onnx_file import load_onnx

    assert load_onnx(path).skipped_bytes >= 4 * 256 * 256 * 9
    assert archlint.lint(path).summary.macs == conv_macs(wide)


def loop_model():
    body_conv, w = conv("body_conv", "state_in", "state_out", 3, 3)
    body = helper.make_graph(
        [body_conv, helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, 3, 16, 16])], [w])
    stem, stem_w = conv("stem", "x", "s", 3, 3)
    trips = helper.make_tensor("trips", TensorProto.INT64, [], [4])
    keep_going = helper.make_tensor("keep_going", TensorProto.BOOL, [], [True])
    loop = helper.make_node("Loop", ["trips", "keep_going", "s"], ["y"], name="repeat", body=body)
    return make_model([stem, loop], X, {"y": [1, 3, 16, 16]}, initializers=[stem_w, trips, keep_going])


def test_ops_inside_a_loop_body_are_listed_and_the_totals_called_partial(tmp_path):
    path = save(loop_model(), tmp_path / "m.onnx")
    report = archlint.lint(path)
    assert report.summary.macs == conv_macs([(3, 3, 3, 1)])  # the stem only
    assert report.summary.unsupported_ops == {"Loop": 1, "Conv (in Loop)": 1, "Identity (in Loop)": 1}
    assert any("partial totals" in n for n in report.summary.notes)
    assert report.to_dict()["summary"]["unsupported_ops"]["Conv (in Loop)"] == 1
    text = run_cli(path).stdout
    assert "Conv (in Loop) x1" in text and "partial totals" in text


def test_if_without_an_else_branch_is_a_one_line_error(tmp_path):
    node = helper.make_node("If", ["cond"], ["y"], name="gate", then_branch=branch("a", BIG, "ya"))
    path = save(make_model([*data_condition(), node], X, {"y": None}), tmp_path / "m.onnx")
    result = run_cli(path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'If' node 'gate' lacks a condition, a then_branch or an else_branch" in result.stderr


def test_torch_cond_exported_by_dynamo_reports_the_larger_branch(tmp_path):
    import torch

    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                         torch.nn.Conv2d(8, 8, 3, stride=2, padding=1))
            self.b = torch.nn.Conv2d(3, 8, 1, stride=2)

        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda x: self.a(x), lambda x: self.b(x), (x,))

    torch.manual_seed(0)
    report = archlint.lint(export_onnx(Gated().eval(), torch.randn(1, 3, 16, 16), tmp_path / "gated.onnx", "dynamo"))
    assert [r.name for r in report.layers if r.op == "conv"] == ["a.0", "a.2"]
    assert report.summary.macs == 16 * 16 * 8 * 3 * 9 + 8 * 8 * 8 * 8 * 9
    assert not report.summary.unsupported_ops
    assert any("then_branch" in n and "the larger" in n for n in report.summary.notes)
