"""Recurrent layers (LSTM, GRU, RNN and onnxruntime's DynamicQuantizeLSTM) are counted by the
standard convention: per time step and direction, gates x hidden x (input + hidden) MACs.

Checked on a small CRNN (conv features read as a sequence by a two-layer recurrent
network, then a linear head) against torch's FlopCounterMode (FLOPs = 2 x MACs; oneDNN is
switched off so that the LSTM runs as the matrix products FlopCounterMode sees) and
against the formula by hand, layer by layer. The PyTorch path reads ``nn.LSTM``/``nn.GRU``/
``nn.RNN`` as the same layers (one per stacked layer) and is checked against both and the ONNX path;
a saved ``torch.export`` program (where they are one ATen ``lstm``/``gru``/``rnn_tanh`` operator)
reads the same way. Both paths name the layers of a stacked module alike (``rnn``, ``rnn_1``),
so ``archlint diff`` pairs them.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import archlint
from archlint.export import export_onnx

STEPS, FEATURES, HIDDEN, CLASSES = 20, 16 * 8, 32, 10
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


class CRNN(torch.nn.Module):
    """1x1x8x20 image -> conv (16x8x20) -> 20 steps of 128 features -> 2-layer recurrent -> linear."""

    def __init__(self, kind: str, bidirectional: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.rnn = getattr(torch.nn, kind)(FEATURES, HIDDEN, num_layers=2, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(HIDDEN * (2 if bidirectional else 1), CLASSES)

    def forward(self, x):
        y = self.conv(x).flatten(1, 2).permute(2, 0, 1)  # steps, batch, features
        y, _ = self.rnn(y)
        return self.fc(y)


def flop_counter_macs(module, *inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # switching oneDNN off warns about TF32 on Intel GPUs
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter:
            module(*inputs)
    return counter.get_total_flops() // 2


def save_program(module, x, path):
    """``module`` saved as a ``torch.export`` program (``.pt2``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export warns that nn.RNNBase assigns _flat_weights
        torch.export.save(torch.export.export(module, (x,)), path)
    return path


def hand_macs(kind: str, directions: int) -> list[int]:
    """MACs of the two recurrent layers: steps x directions x gates x hidden x (input + hidden)."""
    first = STEPS * directions * GATES[kind] * HIDDEN * (FEATURES + HIDDEN)
    second = STEPS * directions * GATES[kind] * HIDDEN * (HIDDEN * directions + HIDDEN)
    return [first, second]


CASES = [pytest.param(kind, bi, exporter, id=f"{kind}-{'bi' if bi else 'uni'}-{exporter}")
         for kind in ("LSTM", "GRU", "RNN") for bi in (False, True) for exporter in ("legacy", "dynamo")]


@pytest.mark.parametrize(("kind", "bidirectional", "exporter"), CASES)
def test_recurrent_layer_macs_follow_the_standard_convention(tmp_path, kind, bidirectional, exporter):
    torch.manual_seed(0)
    module, x = CRNN(kind, bidirectional).eval(), torch.randn(1, 1, 8, STEPS)
    report = archlint.lint(export_onnx(module, x, tmp_path / "crnn.onnx", exporter))
    recurrent = [row for row in report.layers if row.op == "recurrent"]
    assert [row.macs for row in recurrent] == hand_macs(kind, 2 if bidirectional else 1)
    assert 2 * report.summary.macs == 2 * flop_counter_macs(module, x)
    assert report.summary.params == sum(p.numel() for p in module.parameters())
    assert not report.summary.unsupported_ops


def test_dynamically_quantized_lstm_reports_like_the_float_lstm(tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    torch.manual_seed(0)
    module, x = CRNN("LSTM", True).eval(), torch.randn(1, 1, 8, STEPS)
    source = export_onnx(module, x, tmp_path / "crnn.onnx", "legacy")
    quantize_dynamic(str(source), str(tmp_path / "crnn_dynamic.onnx"))
    float_report, quantized = archlint.lint(source), archlint.lint(tmp_path / "crnn_dynamic.onnx")
    rows = {row.name: (row.op, row.macs, row.params) for row in float_report.layers if row.macs}
    assert {row.name: (row.op, row.macs, row.params) for row in quantized.layers if row.macs} == rows
    assert {row.source_op for row in quantized.layers if row.op == "recurrent"} == {"com.microsoft::DynamicQuantizeLSTM"}
    assert (quantized.summary.macs, quantized.summary.params) == (float_report.summary.macs, float_report.summary.params)
    assert not quantized.summary.unsupported_ops


class BatchFirstRNN(torch.nn.Module):
    """A batch-first two-layer bidirectional ``nn.RNN`` (ReLU) over 7 steps of a batch of 3, optionally
    from a given initial state."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(24, 16, num_layers=2, nonlinearity="relu", bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x, h=None):
        return self.fc(self.rnn(x, h)[0])


def test_dynamo_export_of_a_simple_rnn_reads_back_as_the_modules_recurrent_layers(tmp_path):
    """The dynamo exporter has no ONNX RNN for ``nn.RNN``: it writes per-step matrix products, and
    computes the first step's recurrent product (zero initial state) ahead of time into a constant,
    so the file holds batch x hidden x hidden MACs per layer and direction fewer than the module
    (an independent count of the file says so) and reads each recurrent weight once per step. The
    exporter's metadata names the module and its parameters: archlint reads the module back."""
    from independent_macs import count

    torch.manual_seed(0)
    module, x = BatchFirstRNN().eval(), torch.randn(3, 7, 24)
    path = export_onnx(module, x, tmp_path / "rnn.onnx", "dynamo")
    report = archlint.lint(path)
    assert [(row.name, row.op, row.macs) for row in report.layers] == [
        ("x", "input", 0), ("rnn", "recurrent", 7 * 3 * 2 * 16 * (24 + 16)),
        ("rnn_1", "recurrent", 7 * 3 * 2 * 16 * (32 + 16)), ("fc", "linear", 7 * 3 * 32 * 5)]
    assert report.summary.macs == flop_counter_macs(module, x)
    assert report.summary.macs - sum(count(path, {"x": [3, 7, 24]}).values()) == 2 * 2 * 3 * 16 * 16
    assert report.summary.params == sum(p.numel() for p in module.parameters())
    assert not [note for note in report.summary.notes if "per-step" in note]


def test_dynamo_export_of_a_simple_rnn_from_a_given_initial_state_reads_back_too(tmp_path):
    """With the initial state an input of the model, the first step's product is in the file; the
    state is not an edge of the recurrent layers, as on the PyTorch path."""
    torch.manual_seed(0)
    module, x, h = BatchFirstRNN().eval(), torch.randn(3, 7, 24), torch.randn(4, 3, 16)
    report = archlint.lint(export_onnx(module, (x, h), tmp_path / "rnn.onnx", "dynamo"))
    assert [(row.name, row.op) for row in report.layers] == [
        ("x", "input"), ("h", "input"), ("rnn", "recurrent"), ("rnn_1", "recurrent"), ("fc", "linear")]
    assert report.summary.macs == flop_counter_macs(module, x, h)
    assert report.summary.params == sum(p.numel() for p in module.parameters())


def test_dynamo_export_of_a_simple_rnn_it_cannot_read_back_keeps_its_products_and_says_so(tmp_path):
    """One step whose sequence is shaped like the state (1 x batch x hidden): which input is the
    sequence is not certain, so the ops are kept as the file holds them (an independent count of
    the file agrees; the exporter computed the one step's recurrent product ahead of time, so
    FlopCounterMode counts batch x hidden x hidden more) and a note names the module."""
    from independent_macs import count

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.RNN(16, 16)).eval()
    x = torch.randn(1, 3, 16)
    path = export_onnx(module, x, tmp_path / "rnn.onnx", "dynamo")
    report = archlint.lint(path)
    assert not [row for row in report.layers if row.op == "recurrent"]
    assert report.summary.macs == sum(count(path, {"x": [1, 3, 16]}).values())
    assert flop_counter_macs(module, x) - report.summary.macs == 3 * 16 * 16
    assert [note for note in report.summary.notes if note.startswith("nn.RNN '0' is written as per-step")]


@pytest.mark.parametrize(("kind", "bidirectional"), [pytest.param(kind, bi, id=f"{kind}-{'bi' if bi else 'uni'}")
                                                     for kind in ("LSTM", "GRU", "RNN") for bi in (False, True)])
def test_torch_recurrent_module_reports_like_its_onnx_export(tmp_path, kind, bidirectional):
    torch.manual_seed(0)
    module, x = CRNN(kind, bidirectional).eval(), torch.randn(1, 1, 8, STEPS)
    report = archlint.lint(module, example_inputs=x)
    recurrent = [row for row in report.layers if row.op == "recurrent"]
    assert [row.macs for row in recurrent] == hand_macs(kind, 2 if bidirectional else 1)
    assert [row.name for row in recurrent] == ["rnn", "rnn_1"]
    assert {row.source_op for row in recurrent} == {kind}
    assert report.summary.macs == flop_counter_macs(module, x)
    assert report.summary.params == sum(p.numel() for p in module.parameters())
    assert not report.summary.unsupported_ops
    onnx_report = archlint.lint(export_onnx(module, x, tmp_path / "crnn.onnx", "legacy"))
    assert [(row.name, row.macs, row.params) for row in recurrent] == [
        (row.name, row.macs, row.params) for row in onnx_report.layers if row.op == "recurrent"]
    assert (report.summary.macs, report.summary.params) == (onnx_report.summary.macs, onnx_report.summary.params)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_diff_pairs_the_stacked_layers_of_a_module_and_its_onnx_export(tmp_path, exporter):
    """The ONNX file holds the exporter's Transpose and Reshape of each layer's output in the
    module's scope too: the recurrent layers are still named by their module, as on the
    PyTorch path, so the diff pairs them instead of listing them as removed and added."""
    from archlint.api import lint_graph
    from archlint.diff import diff_graphs
    from archlint.frontends import load_graph

    torch.manual_seed(0)
    module, x = CRNN("LSTM", True).eval(), torch.randn(1, 1, 8, STEPS)
    base = load_graph(module, example_inputs=x)
    head = load_graph(export_onnx(module, x, tmp_path / "crnn.onnx", exporter))
    d = diff_graphs(base, lint_graph(base), head, lint_graph(head))
    assert {"rnn", "rnn_1"} <= set(d.matched) and d.matched["rnn"] == "rnn" and d.matched["rnn_1"] == "rnn_1"
    assert not [name for name in d.removed if name.startswith("rnn")]
    assert d.totals["macs"]["delta"] == 0 and d.totals["params"]["delta"] == 0


@pytest.mark.parametrize(("kind", "layers", "bidirectional"),
                         [pytest.param(kind, layers, bi, id=f"{kind}-{layers}-{'bi' if bi else 'uni'}")
                          for kind in ("LSTM", "GRU", "RNN") for layers, bi in ((1, False), (2, True))])
def test_saved_export_program_reads_recurrent_modules_as_recurrent_layers(tmp_path, kind, layers, bidirectional):
    """``torch.export`` keeps ``nn.LSTM``/``nn.GRU``/``nn.RNN`` as one ATen operator, which was
    opened into its per-step matrix products (a table of hundreds of rows)."""
    torch.manual_seed(0)
    directions = 2 if bidirectional else 1
    module = CRNN(kind, bidirectional).eval()
    module.rnn = getattr(torch.nn, kind)(FEATURES, HIDDEN, num_layers=layers, bidirectional=bidirectional)
    x = torch.randn(1, 1, 8, STEPS)
    report = archlint.lint(save_program(module, x, tmp_path / "crnn.pt2"))
    recurrent = [row for row in report.layers if row.op == "recurrent"]
    assert [row.macs for row in recurrent] == hand_macs(kind, directions)[:layers]
    assert [row.name for row in recurrent] == ["rnn", "rnn_1"][:layers]
    assert len(report.layers) == 5 + layers  # input, conv, its reshapes, the recurrent layers, fc
    assert report.summary.macs == flop_counter_macs(module, x)
    assert report.summary.params == sum(p.numel() for p in module.parameters())
    assert not report.summary.unsupported_ops


class Tagger(torch.nn.Module):
    """A batch-first, three-layer bidirectional LSTM over token embeddings (batch 3, 7 steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(24, 16, num_layers=3, bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


def test_torch_batch_first_multilayer_lstm_counts_every_layer_by_the_formula():
    torch.manual_seed(0)
    module, x = Tagger().eval(), torch.randn(3, 7, 24)
    report = archlint.lint(module, example_inputs=x)
    steps_batch = 7 * 3
    sizes = [24, 32, 32]
    assert [row.macs for row in report.layers if row.op == "recurrent"] == [
        steps_batch * 2 * 4 * 16 * (size + 16) for size in sizes]
    assert report.summary.macs == flop_counter_macs(module, x)
    assert report.summary.params == sum(p.numel() for p in module.parameters())


def test_saved_export_program_of_a_batch_first_multilayer_lstm_reports_like_the_module(tmp_path):
    torch.manual_seed(0)
    module, x = Tagger().eval(), torch.randn(3, 7, 24)
    saved = archlint.lint(save_program(module, x, tmp_path / "tagger.pt2"))
    live = archlint.lint(module, example_inputs=x)
    assert [(row.name, row.op, row.macs, row.params) for row in saved.layers] == [
        (row.name, row.op, row.macs, row.params) for row in live.layers]
    assert saved.summary.macs == flop_counter_macs(module, x)
    assert saved.summary.params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("fixture", "expected"), [("stacked_lstm_8", [("fc", 9, 8)]), ("stacked_lstm_2", []),
                                                   ("residual_lstm_8", [])])
def test_stacked_recurrent_layers_are_a_plain_chain_on_the_pytorch_path(fixture, expected):
    """AL101 counts each stacked recurrent layer once (its depth across layers, not through
    time): 8 stacked LSTM layers exceed the limit of 4 recurrent layers, 2 do not, and
    residual connections between single-layer LSTMs end the chain (fixtures/specs/recurrent.py)."""
    from conftest import SPECS, _load_script

    module, shape = _load_script(SPECS / "recurrent.py", "fixture_specs_recurrent_for_tests").MODELS[fixture]()
    report = archlint.lint(module.eval(), example_inputs=torch.randn(shape), select=["AL101"])
    assert [(f.layer, f.data["depth"], f.data["recurrent"]) for f in report.findings] == expected


def test_unbatched_sequence_is_one_recurrent_layer_counted_as_a_batch_of_one():
    """``nn.GRU`` on an unbatched ``(steps, features)`` sequence (was opened into its per-step products)."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.GRU(12, 8, num_layers=2, bidirectional=True)).eval()
    x = torch.randn(5, 12)
    report = archlint.lint(module, example_inputs=x)
    assert [(row.op, row.macs) for row in report.layers if row.op == "recurrent"] == [
        ("recurrent", 5 * 2 * 3 * 8 * (12 + 8)), ("recurrent", 5 * 2 * 3 * 8 * (16 + 8))]
    assert len(report.layers) == 3
    assert report.summary.macs == flop_counter_macs(module, x)
    assert report.summary.params == sum(p.numel() for p in module.parameters())
