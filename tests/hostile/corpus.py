"""A corpus of broken and hostile model files, generated on demand (nothing big is committed).

``build(folder)`` writes every case into ``folder`` and returns the list of :class:`Case`.
Each case says what archlint must do with it: ``"error"`` (exit 2, one line naming the
file; ``hint`` is a substring the problem must contain), ``"report"`` (a normal report)
or ``"any"`` (either, but nothing else: no traceback, hang or runaway memory).

Also used by the hypothesis fuzz test: :func:`valid_model` is the seed it mutates.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

__all__ = ["Case", "build", "valid_model", "MARKER"]

#: File a malicious pickle would create if anything ever unpickled it.
MARKER = "PWNED_BY_PICKLE"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    expect: str  # "error", "report" or "any"
    hint: str = ""
    args: tuple[str, ...] = ()


def _model(nodes, inputs, outputs, inits=(), opset: int = 17, ir: int = 8, **graph_kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), **graph_kwargs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def _x(shape=(1, 3, 16, 16), name: str = "x"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _out(name: str = "y"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)


def _dims_only(name: str, dims) -> TensorProto:
    """A float tensor with dims and no data (as archlint sees a large initializer)."""
    return TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))


def _w(name: str, shape, seed: int = 0) -> TensorProto:
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def valid_model() -> onnx.ModelProto:
    """A small valid CNN; one weight has more than 1024 elements, so its bytes get skipped."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="/conv1/Conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="/conv2/Conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="/relu2/Relu"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="/gap/GlobalAveragePool"),
        helper.make_node("Flatten", ["g"], ["f"], name="/flatten/Flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1),
    ]
    inits = [_w("w1", (8, 3, 3, 3)), _w("b1", (8,)), _w("w2", (16, 8, 3, 3)),
             _w("fc.weight", (10, 16)), _w("fc.bias", (10,))]
    return _model(nodes, [_x()], [_out()], inits)


def _conv_model(**attrs) -> onnx.ModelProto:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv", **attrs)
    return _model([node, helper.make_node("Relu", ["y"], ["z"])], [_x()], [_out("z")], [_w("w", (8, 3, 3, 3))])


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class _Payload:
    """Unpickling this creates ``MARKER`` in the current folder (and so proves a pickle was loaded)."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def __reduce__(self):
        return (open, (os.path.join(self.folder, MARKER), "w"))


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (hand-made: protobuf refuses to build deep nests)."""
    def varint(v: int) -> bytes:
        out = bytearray()
        while v > 0x7F:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        return bytes(out) + bytes([v])
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _nested_if(depth: int) -> bytes:
    """A model of ``If`` nodes nested ``depth`` deep (each then-branch holds the next If)."""
    leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["o0"])], "leaf", [], [_out("o0")])
    leaf_bytes = leaf.SerializeToString()
    inner = leaf_bytes
    for level in range(1, depth + 1):
        node = helper.make_node("If", ["cond"], [f"o{level}"]).SerializeToString()
        for attr_name, graph in (("then_branch", inner), ("else_branch", leaf_bytes)):
            attr = AttributeProto(name=attr_name, type=AttributeProto.GRAPH).SerializeToString()
            node += _field(5, attr + _field(6, graph))  # NodeProto.attribute, AttributeProto.g
        outputs = [_out(f"o{level}")]
        inputs = [_x(), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])] if level == depth else []
        inner = _field(1, node) + helper.make_graph([], f"level{level}", inputs, outputs).SerializeToString()
    shell = _model([], [], [])
    shell.ClearField("graph")
    return shell.SerializeToString() + _field(7, inner)  # ModelProto.graph


def _external(folder: Path, name: str, location: str, **fields: str) -> Path:
    """A conv model whose weight lives in external data at ``location``."""
    w = _dims_only("w", [8, 3, 3, 3])
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    for key, value in fields.items():
        w.external_data.add(key=key, value=value)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])
    path = folder / name
    path.write_bytes(_model([node], [_x()], [_out()], [w]).SerializeToString())
    return path


def build(folder: Path) -> list[Case]:
    """Write the corpus into ``folder`` (created if needed); return its cases."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, content, expect: str, hint: str = "", args: tuple[str, ...] = ()) -> None:
        path = folder / name
        if isinstance(content, onnx.ModelProto):
            content = content.SerializeToString()
        path.write_bytes(content)
        cases.append(Case(name, path, expect, hint, args))

    good = valid_model()
    data = good.SerializeToString()
    add("valid.onnx", data, "report")

    # --- not protobuf, or not a model --------------------------------------------------
    add("empty.onnx", b"", "error", "empty file")
    add("image.onnx", _png(), "error", "not an ONNX model")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr("archive/version", "3\n")
    add("archive.onnx", buf.getvalue(), "error", "not an ONNX model")
    add("notes.onnx", b"this is not a model\nbut some text\n", "error", "not an ONNX model")
    add("model.onnx.txt", onnx.printer.to_text(good).encode(), "error", "not an ONNX model")
    add("pickle.onnx", pickle.dumps(_Payload(folder), protocol=2), "error", "pickle")
    add("pickle.pt", pickle.dumps(_Payload(folder), protocol=2), "error", "pickle")
    add("pickle4.pth", pickle.dumps(_Payload(folder), protocol=4), "error", "pickle")
    add("random.onnx", np.random.default_rng(1).bytes(4096), "error")
    add("zeros.onnx", bytes(4096), "error")
    add("graph_only.onnx", good.graph.SerializeToString(), "error")
    add("no_ir_version.onnx", _without(good, "ir_version"), "error", "ir_version")
    add("no_graph.onnx", _without(good, "graph"), "error", "no graph nodes")

    # --- damaged protobuf ----------------------------------------------------------------
    for cut in (1, 2, 10, len(data) // 3, len(data) // 2, len(data) - 7, len(data) - 1):
        add(f"truncated_{cut}.onnx", data[:cut], "error")
    rng = np.random.default_rng(7)
    for i in range(12):
        flipped = bytearray(data)
        for pos in rng.integers(0, len(data), size=1 + i % 4):
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
        add(f"bitflip_{i}.onnx", bytes(flipped), "any")
    # a length prefix claiming 2^40 bytes
    add("huge_length.onnx", b"\x08\x08\x3a" + bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]) + b"\x0a\x00",
        "error", "truncated")
    add("bad_varint.onnx", b"\x08" + b"\xff" * 11, "error")
    add("bad_wiretype.onnx", b"\x08\x08\x3f\x01", "error")

    # --- broken graphs ----------------------------------------------------------------------
    relu = lambda i, o, n="": helper.make_node("Relu", [i], [o], name=n)  # noqa: E731
    add("cycle.onnx", _model([relu("b", "a", "r1"), relu("a", "b", "r2")], [_x()], [_out("b")]), "error", "cycle")
    add("dangling.onnx", _model([helper.make_node("Add", ["x", "nowhere"], ["y"])], [_x()], [_out()]),
        "error", "nowhere")
    add("unsorted.onnx", _model([relu("a", "y"), relu("x", "a")], [_x()], [_out()]), "error")
    add("duplicate_output.onnx", _model([relu("x", "y"), relu("x", "y")], [_x()], [_out()]), "any")
    add("no_inputs.onnx", _model([helper.make_node("Constant", [], ["y"], value=_w("v", (2,)))], [], [_out()]),
        "error")
    add("output_not_produced.onnx", _model([relu("x", "y")], [_x()], [_out("elsewhere")]), "any")
    add("node_without_outputs.onnx", _model([helper.make_node("Relu", ["x"], [])], [_x()], []), "any")
    add("empty_op_type.onnx", _model([helper.make_node("", ["x"], ["y"])], [_x()], [_out()]), "any")
    add("weight_shape_unknown.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])],
                                            [_x(), helper.make_tensor_value_info("w", TensorProto.FLOAT, None)],
                                            [_out()]), "error")
    add("weight_computed.onnx", _model([relu("wx", "w"), helper.make_node("Conv", ["x", "w"], ["y"])],
                                       [_x(), helper.make_tensor_value_info("wx", TensorProto.FLOAT, None)],
                                       [_out()]), "error")
    add("conv_without_weight.onnx", _model([helper.make_node("Conv", ["x"], ["y"], kernel_shape=[3, 3])],
                                           [_x()], [_out()]), "error")
    add("conv_1d_weight.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])], [_x()], [_out()],
                                      [_w("w", (8,))]), "error")

    # --- out-of-range attributes ------------------------------------------------------------
    for name, attrs in {"strides0": dict(strides=[0, 0]), "strides_neg": dict(strides=[-2, -2]),
                        "pads_neg": dict(pads=[-4, -4, -4, -4]), "pads_short": dict(pads=[1, 1]),
                        "group0": dict(group=0), "group_neg": dict(group=-3), "group5": dict(group=5),
                        "dilations0": dict(dilations=[0, 0]), "kernel0": dict(kernel_shape=[0, 0]),
                        "kernel_mismatch": dict(kernel_shape=[5, 5]), "kernel_rank": dict(kernel_shape=[3]),
                        "auto_pad_bogus": dict(auto_pad="BOGUS"), "strides_rank": dict(strides=[1, 1, 1])}.items():
        add(f"conv_{name}.onnx", _conv_model(**attrs), "error")
    pool = lambda **a: _model([helper.make_node("MaxPool", ["x"], ["y"], **a)], [_x()], [_out()])  # noqa: E731
    add("pool_no_kernel.onnx", pool(), "error")
    add("pool_strides0.onnx", pool(kernel_shape=[2, 2], strides=[0, 0]), "error")
    add("pool_kernel_huge.onnx", pool(kernel_shape=[10**6, 10**6]), "error")
    add("attr_wrong_type.onnx", _conv_model(strides="two"), "error")

    # --- dims ---------------------------------------------------------------------------------
    add("input_dim0.onnx", _model([relu("x", "y")], [_x((1, 3, 0, 16))], [_out()]), "error")
    add("input_dim_neg.onnx", _model([relu("x", "y")], [_x((1, 3, -5, 16))], [_out()]), "error")
    add("conv_input_dim0.onnx", _conv_model_input((1, 3, 0, 16)), "error")
    add("input_minus_one.onnx", _conv_model_input((-1, 3, 16, 16)), "error", "--input-shape x:1,3,16,16")
    # declared intermediate/output shapes: hints, dropped when wrong; a graph wrong by itself stops
    for name, declared in (("stale_rank", [1, 8]), ("minus_one", [-1, 8, -1, -1]), ("junk", [-7, 0, 2**62]),
                           ("huge_rank", [1] * 64)):
        model = _conv_model_input((1, 3, 16, 16))
        model.graph.value_info.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, declared))
        del model.graph.output[:]
        model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, declared))
        add(f"declared_{name}.onnx", model, "report")
    mismatch = _model([helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
                       helper.make_node("Add", ["c", "x"], ["y"])], [_x()],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], [_w("w", (8, 3, 1, 1))])
    add("declared_hides_inconsistent_graph.onnx", mismatch, "error", "shape inference failed")
    nhwc = _model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), *_conv_nodes()[1:]],
                  [_x((1, 16, 16, 3))], [_out("z")])
    nhwc.graph.node.insert(1, helper.make_node("Conv", ["t", "w"], ["c"], kernel_shape=[3, 3]))
    nhwc.graph.initializer.append(_w("w", (8, 3, 3, 3)))
    add("channels_last_input.onnx", nhwc, "report")
    nhwc_bad = _model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
                       helper.make_node("Conv", ["t", "w"], ["y"], kernel_shape=[3, 3])],
                      [_x((1, 16, 16, 5))], [_out()], [_w("w", (8, 3, 3, 3))])
    add("channels_last_wrong_channels.onnx", nhwc_bad, "any")
    add("weight_dim0.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])], [_x()], [_out()],
                                   [_w("w", (8, 3, 0, 3))]), "error")
    neg = _dims_only("w", [8, -3, 3, 3])
    add("weight_dim_neg.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])], [_x()], [_out()], [neg]),
        "error")
    add("input_2pow40.onnx", _conv_model_input((1, 3, 2**40, 2**40)), "any")
    add("input_2pow62.onnx", _conv_model_input((2**62, 3, 16, 16)), "any")
    add("dynamic_input.onnx", _model([relu("x", "y")], [_x((1, 3, "h", "w"))], [_out()]), "error", "dynamic")
    add("input_no_shape.onnx", _model([relu("x", "y")], [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                          None)], [_out()]),
        "error")
    big = _dims_only("w", [8, 3, 10**6, 10**6])
    add("kernel_1e6.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])], [_x()], [_out()], [big]),
        "error")
    add("kernel_1e6_fits.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])],
                                       [_x((1, 3, 2**40, 2**40))], [_out()], [big]), "any")
    wide = _dims_only("w", [2**40, 3, 3, 3])
    add("weight_2pow40_channels.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])], [_x()], [_out()],
                                              [wide]), "any")
    lie = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    lie.ClearField("dims")
    lie.dims.extend([2**40, 3, 3, 3])  # claims far more elements than its bytes hold
    add("weight_dims_lie.onnx", _model([helper.make_node("Conv", ["x", "w"], ["y"])], [_x()], [_out()], [lie]),
        "any")
    shape = numpy_helper.from_array(np.array([2**20, 2**20, 2**20], np.int64), "shape")
    add("constant_of_shape_bomb.onnx", _model(
        [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
         helper.make_node("Shape", ["big"], ["s"]),
         helper.make_node("Reshape", ["x", "s"], ["y"])], [_x()], [_out()], [shape]), "any")
    add("expand_bomb.onnx", _model(
        [helper.make_node("Expand", ["one", "shape"], ["big"]),
         helper.make_node("Shape", ["big"], ["s"]),
         helper.make_node("Reshape", ["x", "s"], ["y"])], [_x()], [_out()],
        [shape, numpy_helper.from_array(np.ones((1,), np.float32), "one")]), "any")
    add("range_bomb.onnx", _model(
        [helper.make_node("Range", ["zero", "limit", "step"], ["r"]),
         helper.make_node("Shape", ["r"], ["s"]),
         helper.make_node("Reshape", ["x", "s"], ["y"])], [_x()], [_out()],
        [numpy_helper.from_array(np.array(0, np.int64), n) for n in ("zero",)]
        + [numpy_helper.from_array(np.array(2**40, np.int64), "limit"),
           numpy_helper.from_array(np.array(1, np.int64), "step")]), "any")

    # --- unknown ops, custom domains, control flow ----------------------------------------------
    add("unknown_op_head.onnx", _model([*_conv_nodes(), helper.make_node("FooBar", ["z"], ["y"])],
                                       [_x()], [_out()], [_w("w", (8, 3, 3, 3))]), "any")
    add("unknown_op_middle.onnx", _model([helper.make_node("FooBar", ["x"], ["u"]),
                                          helper.make_node("Conv", ["u", "w"], ["y"])],
                                         [_x()], [_out()], [_w("w", (8, 3, 3, 3))]), "error")
    custom = _model([helper.make_node("MyOp", ["x"], ["u"], domain="com.example"),
                     helper.make_node("Relu", ["u"], ["y"])], [_x()], [_out()])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    add("custom_domain.onnx", custom, "any")
    add("custom_domain_undeclared.onnx", _model([helper.make_node("MyOp", ["x"], ["y"], domain="evil.domain")],
                                                [_x()], [_out()]), "any")
    add("opset_999.onnx", _model([relu("x", "y")], [_x()], [_out()], opset=999), "any")
    add("opset_1.onnx", _model([relu("x", "y")], [_x()], [_out()], opset=1), "any")
    add("ir_version_huge.onnx", _model([relu("x", "y")], [_x()], [_out()], ir=2**40), "any")
    branch = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [_out("t")])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    add("if_subgraph.onnx", _model([helper.make_node("If", ["cond"], ["y"], then_branch=branch,
                                                     else_branch=branch)], [_x(), cond], [_out()]), "any")
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Relu", ["v_in"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []), _x(name="v_in")],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), _out("v_out")])
    trips = numpy_helper.from_array(np.array(2**62, np.int64), "trips")
    add("loop_subgraph.onnx", _model([helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body)],
                                     [_x()], [_out()], [trips]), "any")
    add("if_nested_20.onnx", _nested_if(20), "any")
    add("if_nested_120.onnx", _nested_if(120), "error")
    add("many_attrs.onnx", _conv_model(kernel_shape=[3, 3], **{f"junk{i}": i for i in range(2000)}), "any")

    # --- names that are not UTF-8 (protobuf hands such strings over as bytes) ------------------
    def not_utf8(model: onnx.ModelProto, marker: bytes) -> bytes:
        return model.SerializeToString().replace(marker, b"\xff" * len(marker))

    add("node_name_not_utf8.onnx", not_utf8(_model([relu("x", "y", "QQQQ")], [_x()], [_out()]), b"QQQQ"),
        "error", "its name is not valid UTF-8")
    add("input_name_not_utf8.onnx", not_utf8(_model([relu("QQQQ", "y")], [_x(name="QQQQ")], [_out()]), b"QQQQ"),
        "error", "not valid UTF-8")
    tagged = relu("x", "y")
    tagged.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'QQQQ']")
    add("metadata_not_utf8.onnx", not_utf8(_model([tagged], [_x()], [_out()]), b"QQQQ"), "error",
        "its metadata is not valid UTF-8")
    documented = relu("x", "y")
    documented.doc_string = "QQQQ"
    add("doc_string_not_utf8.onnx", not_utf8(_model([documented], [_x()], [_out()]), b"QQQQ"), "error",
        "its doc string is not valid UTF-8")

    # --- absurd names: module paths of 100,000 levels (quadratic naming would hang) ---------------
    deep = [f"m{i}" for i in range(100_000)]
    add("deep_legacy_name.onnx", _model([helper.make_node("Relu", ["x"], ["y"], name="/" + "/".join(deep) + "/Relu")],
                                        [_x()], [_out()]), "report")
    nested = [".".join(deep[:i]) for i in (1, 2, 50_000, 100_000)]  # each contains the next
    scoped = []
    for i, scope in enumerate(nested):
        node = helper.make_node("Relu", ["x" if i == 0 else f"r{i - 1}"], ["y" if i == len(nested) - 1 else f"r{i}"])
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(["", scope, "relu"]))
        scoped.append(node)
    add("deep_dynamo_scopes.onnx", _model(scoped, [_x()], [_out()]), "report")
    # every node's stack trace names another file 1,500 folders deep (each one looked up on disk)
    traced = []
    for i in range(3000):
        node = helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], ["y" if i == 2999 else f"t{i}"])
        trace = f'File "/{"a/" * 1500}m{i}.py", line {i + 1}, in forward'
        node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value=trace)
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(["", f"m{i}", "relu"]))
        traced.append(node)
    add("deep_trace_paths.onnx", _model(traced, [_x()], [_out()]), "report")

    # --- receptive-field pieces: each block adds a branch downsampled by another stride and
    # resized back, so the strides meeting at each Add double (2^26 without a bound) ----------------
    n, blocks, prev = 101, 26, "x"
    merges = []
    for i in range(blocks):
        merges += [helper.make_node("Conv", [prev, "w"], [f"c{i}"], kernel_shape=[3, 3], strides=[2 + i] * 2,
                                    pads=[1] * 4),
                   helper.make_node("Resize", [f"c{i}", "", "", "sizes"], [f"u{i}"], mode="nearest"),
                   helper.make_node("Add", [prev, f"u{i}"], ["y" if i == blocks - 1 else f"a{i}"])]
        prev = f"a{i}"
    add("resize_merges_26.onnx", _model(merges, [_x((1, 1, n, n))], [_out()],
                                        [_w("w", (1, 1, 3, 3)),
                                         numpy_helper.from_array(np.array([1, 1, n, n], np.int64), "sizes")]),
        "report")
    return cases


def _conv_nodes():
    return [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]), helper.make_node("Relu", ["c"], ["z"])]


def _conv_model_input(shape) -> onnx.ModelProto:
    return _model(_conv_nodes(), [_x(shape)], [_out("z")], [_w("w", (8, 3, 3, 3))])


def _without(model: onnx.ModelProto, field: str) -> bytes:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.ClearField(field)
    return copy.SerializeToString()


def external_cases(folder: Path, outside: Path) -> list[Case]:
    """Models whose external data is missing, short, or outside their folder (directly or via symlinks).

    ``outside`` is a folder next to ``folder`` holding a real weights file, the target of
    the escapes; the escapes must be refused before anything is read.
    """
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.bin"
    secret.write_bytes(bytes(8 * 3 * 3 * 3 * 4))
    (folder / "ok.bin").write_bytes(bytes(8 * 3 * 3 * 3 * 4))
    (folder / "short.bin").write_bytes(bytes(10))
    (folder / "subdir").mkdir(exist_ok=True)
    (folder / "subdir" / "w.bin").write_bytes(bytes(8 * 3 * 3 * 3 * 4))
    for link, target in (("link_out.bin", secret), ("link_dir", outside), ("link_in.bin", folder / "ok.bin")):
        if not (folder / link).is_symlink():
            (folder / link).symlink_to(target)
    rel = os.path.relpath(secret, folder)
    cases = []

    def add(name, location, expect, hint="", **fields):
        cases.append(Case(name, _external(folder, name, location, **fields), expect, hint))

    add("ext_ok.onnx", "ok.bin", "report")
    add("ext_subdir_ok.onnx", "subdir/w.bin", "report")
    add("ext_symlink_inside.onnx", "link_in.bin", "report")
    add("ext_dotdot.onnx", rel, "error", "outside the model's folder")
    add("ext_dotdot_inner.onnx", "subdir/../../" + rel, "error", "outside the model's folder")
    add("ext_absolute.onnx", str(secret), "error", "outside the model's folder")
    add("ext_absolute_etc.onnx", "/etc/passwd", "error", "outside the model's folder")
    add("ext_dev_zero.onnx", "/dev/zero", "error", "outside the model's folder")
    add("ext_symlink_file.onnx", "link_out.bin", "error", "resolves outside")
    add("ext_symlink_dir.onnx", "link_dir/secret.bin", "error", "resolves outside")
    add("ext_backslash.onnx", "..\\" + rel.replace("/", "\\"), "error")
    add("ext_missing.onnx", "nothing_here.bin", "error", "missing external data")
    add("ext_directory.onnx", "subdir", "error")
    add("ext_dot.onnx", ".", "error")
    add("ext_empty_location.onnx", "", "error", "without a location")
    add("ext_nul.onnx", "ok.bin\x00../../etc/passwd", "error")
    add("ext_short.onnx", "short.bin", "error", "too short")
    add("ext_offset_past.onnx", "ok.bin", "error", "too short", offset="100000")
    add("ext_offset_negative.onnx", "ok.bin", "error", offset="-8")
    add("ext_length_text.onnx", "ok.bin", "error", length="lots")
    add("ext_length_huge.onnx", "ok.bin", "error", "too short", length=str(2**70))
    add("ext_long_name.onnx", "a" * 5000, "error")
    return cases
