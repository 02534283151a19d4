"""The canonical pass: BatchNorm, Pad and single-input Concat normalised the same way on every path."""

from __future__ import annotations

import networkx as nx
import pytest
from onnx import helper

import archlint
from archlint.canonical import canonical_graph
from archlint.export import export_onnx
from archlint.frontends import load_graph
from archlint.graph import Layer, Op

from conftest import chain_graph, make_model, save, weight


def _pad(name, shape_in, p, mode="reflect", shape_out=None):
    n, c, h, w = shape_in
    out = shape_out or (n, c, h + 2 * p, w + 2 * p)
    return Layer(name, Op.PAD, "Pad", out, (shape_in,), pads_begin=(p, p), pads_end=(p, p), mode=mode)


def _conv(name, shape_in, shape_out, k=3, s=1, p=0):
    return Layer(name, Op.CONV, "Conv", shape_out, (shape_in,), kernel=(k, k), stride=(s, s), pads_begin=(p, p),
                 pads_end=(p, p), dilation=(1, 1), in_channels=shape_in[1], out_channels=shape_out[1],
                 param_shapes=((shape_out[1], shape_in[1], k, k),))


def test_unfused_batchnorm_in_an_onnx_file_folds_into_the_conv_with_its_scale_and_shift(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["y"], name="relu")]
    inits = [weight("w", (8, 3, 3, 3)), weight("g", (8,)), weight("b", (8,)), weight("m", (8,)),
             weight("v", (8,), 1.0)]
    path = save(make_model(nodes, {"x": [1, 3, 16, 16]}, {"y": [1, 8, 16, 16]}, inits), tmp_path / "bn.onnx")
    graph = load_graph(str(path))
    assert [layer.op for layer in graph.layers()] == [Op.INPUT, Op.CONV, Op.ACTIVATION]
    conv = graph.layer("conv")
    assert conv.param_shapes == ((8, 3, 3, 3), (8,), (8,))  # weight, BatchNorm scale and shift
    assert list(graph.successors("conv")) == ["relu"]
    report = archlint.lint(str(path))
    assert report.summary.params == 8 * 27 + 16
    assert report.summary.macs == 16 * 16 * 8 * 27
    assert any("BatchNorm" in note and "folded" in note for note in report.summary.notes)


def test_a_batchnorm_after_a_conv_read_twice_stays():
    x = (1, 4, 8, 8)
    conv = _conv("conv", x, x, p=1)
    bn = Layer("bn", Op.NORM, "BatchNormalization", x, (x,), param_shapes=((4,), (4,)))
    g = chain_graph(conv, bn)
    g.add_node("other", layer=Layer("other", Op.ACTIVATION, "Relu", x, (x,)))
    g.add_edge("conv", "other", index=0)
    g.graph["outputs"] = ["bn", "other"]
    assert set(canonical_graph(g)) == {"x", "conv", "bn", "other"}


@pytest.fixture(scope="module")
def torch():
    import torch

    return torch


def _reflect_then_conv(torch):
    nn, F = torch.nn, torch.nn.functional

    class BlurDown(nn.Module):  # timm's tresnet blur pool: a reflect pad, then a stride-2 depthwise conv
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, stride=2, groups=4, bias=False)

        def forward(self, x):
            return self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
    return BlurDown()


def _reflect_conv(torch):
    nn = torch.nn

    class ReflectConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False, padding_mode="reflect")

        def forward(self, x):
            return self.conv(x)
    return ReflectConv()


@pytest.mark.parametrize("build", [_reflect_then_conv, _reflect_conv])
@pytest.mark.parametrize("path", ["torch", "legacy", "dynamo"])
def test_a_reflect_pad_becomes_the_windows_padding_and_keeps_its_mode(torch, tmp_path, build, path):
    module = build(torch).eval()
    x = torch.randn(1, 4, 16, 16)
    model = module if path == "torch" else str(export_onnx(module, x, tmp_path / f"{path}.onnx", path))
    graph = load_graph(model, input_shapes=(1, 4, 16, 16))
    convs = [layer for layer in graph.layers() if layer.op is Op.CONV]
    assert [layer.op for layer in graph.layers()] == [Op.INPUT, Op.CONV]
    conv, = convs
    assert (conv.pads_begin, conv.pads_end, conv.mode) == ((1, 1), (1, 1), "reflect")
    assert conv.input_shapes[0] == (1, 4, 16, 16) and conv.output_shape == (1, 4, 8, 8)
    report = archlint.lint(model, input_shapes=(1, 4, 16, 16))
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(x)
    assert 2 * report.summary.macs == counter.get_total_flops()
    row, = [r for r in report.layers if r.name == conv.name]
    # 3x3 stride 2 reading a map padded by 1: field 3, stride 2, padding 1 (Araujo et al.)
    assert (list(row.receptive_field), list(row.effective_stride), list(row.effective_padding)) == \
        ([3, 3], [2, 2], [1, 1])
    assert not [f for f in report.findings if f.layer == conv.name and "pad" in f.message.lower()]


def test_a_zero_pad_module_folds_like_the_convs_own_padding(torch):
    nn = torch.nn
    padded = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(3, 8, 3))
    own = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    a = load_graph(padded, input_shapes=(1, 3, 12, 12))
    b = load_graph(own, input_shapes=(1, 3, 12, 12))
    fields = ("op", "kernel", "stride", "pads_begin", "pads_end", "mode", "output_shape", "input_shapes",
              "param_shapes")
    assert [[getattr(layer, f) for f in fields] for layer in a.layers()] == \
        [[getattr(layer, f) for f in fields] for layer in b.layers()]


def test_a_chain_of_same_mode_pads_folds_into_one_window():
    x = (1, 4, 8, 8)
    g = chain_graph(_pad("p1", x, 1), _pad("p2", (1, 4, 10, 10), 2), _conv("conv", (1, 4, 14, 14), (1, 4, 12, 12)))
    c = canonical_graph(g)
    assert list(c) == ["x", "conv"]
    conv = c.layer("conv")
    assert (conv.pads_begin, conv.pads_end, conv.mode, conv.input_shapes) == ((3, 3), (3, 3), "reflect", (x,))


def test_pads_that_are_not_spatial_padding_of_a_window_stay():
    x = (1, 4, 8, 8)
    channel_pad = _pad("grow", x, 0, mode="constant", shape_out=(1, 8, 8, 8))  # ResNet option-A shortcut
    g = chain_graph(channel_pad, _conv("conv", (1, 8, 8, 8), (1, 4, 6, 6)))
    assert list(canonical_graph(g)) == ["x", "grow", "conv"]
    g = chain_graph(_pad("p", x, 1), Layer("relu", Op.ACTIVATION, "Relu", (1, 4, 10, 10), ((1, 4, 10, 10),)))
    assert list(canonical_graph(g)) == ["x", "p", "relu"]  # not read by a window


def test_a_single_input_concat_is_spliced_and_a_concat_of_one_tensor_twice_is_not():
    x = (1, 4, 8, 8)
    g = chain_graph(Layer("cat", Op.CONCAT, "Concat", x, (x,)), Layer("relu", Op.ACTIVATION, "Relu", x, (x,)))
    g.graph["outputs"] = ["cat", "relu"]
    c = canonical_graph(g)
    assert list(c.edges) == [("x", "relu")] and c.graph["outputs"] == ["x", "relu"]
    twice = chain_graph(Layer("cat", Op.CONCAT, "cat", (1, 8, 8, 8), (x,)))  # torch.cat([x, x])
    assert list(canonical_graph(twice)) == ["x", "cat"]


def test_a_frozen_graph_is_copied_not_edited():
    x = (1, 4, 8, 8)
    g = nx.freeze(chain_graph(_pad("p", x, 1), _conv("conv", (1, 4, 10, 10), (1, 4, 8, 8))))
    c = canonical_graph(g)
    assert list(g) == ["x", "p", "conv"] and list(c) == ["x", "conv"]
    assert g.layer("conv").pads_begin == (0, 0)


def test_a_zero_pad_and_a_whole_slice_are_spliced_but_a_cropping_slice_is_not():
    x = (1, 4, 8, 8)
    whole = Layer("whole", Op.SLICE, "Slice", x, (x,), starts=(0, 0), stride=(1, 1))
    zero = Layer("zero", Op.PAD, "Pad", x, (x,), pads_begin=(0, 0), pads_end=(0, 0), mode="constant")
    crop = Layer("crop", Op.SLICE, "Slice", (1, 4, 7, 8), (x,), starts=(1, 0), stride=(1, 1))
    g = chain_graph(whole, zero, crop)
    c = canonical_graph(g)
    assert list(c) == ["x", "crop"] and list(c.edges) == [("x", "crop")]


def test_identities_on_the_pytorch_path_are_spliced(torch):
    F = torch.nn.functional

    class Passes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = F.pad(x, (0, 0, 0, 0))[:, :, :, :]
            return torch.cat([self.conv(y)], dim=1)
    graph = load_graph(Passes(), input_shapes=(1, 3, 8, 8))
    assert [layer.op for layer in graph.layers()] == [Op.INPUT, Op.CONV]
    assert graph.graph["outputs"] == ["conv"]


def _framing(torch, pad: int):
    nn, F = torch.nn, torch.nn.functional

    class Framing(nn.Module):  # an audio front end (silero-vad's STFT): pad the signal, add the channel axis, frame
        def __init__(self):
            super().__init__()
            self.stft = nn.Conv1d(1, 258, 256, stride=128, bias=False)

        def forward(self, x):
            if pad:
                x = F.pad(x, (pad, pad), mode="reflect")
            return self.stft(x.unsqueeze(1))
    return Framing()


@pytest.mark.parametrize("path", ["torch", "legacy", "dynamo"])
def test_a_pad_of_a_signal_before_its_channel_axis_is_added_becomes_the_framing_convs_padding(torch, tmp_path, path):
    """Centre padding by half a window (128 of 256, as STFTs do) before ``unsqueeze(1)``: every sample
    is read, and 576 samples give 5 frames, as 'same' padding would. Read as an unpadded conv on the
    padded 832 samples, its last 64 positions (all padding) were reported as never read (AL202) and
    the conv as unpadded (AL301)."""
    module, x = _framing(torch, 128).eval(), torch.randn(4, 576)
    model = module if path == "torch" else str(export_onnx(module, x, tmp_path / f"{path}.onnx", path))
    graph = load_graph(model, input_shapes=(4, 576))
    assert not [layer for layer in graph.layers() if layer.op is Op.PAD]
    conv, = [layer for layer in graph.layers() if layer.op is Op.CONV]
    assert (conv.pads_begin, conv.pads_end, conv.mode) == ((128,), (128,), "reflect")
    assert conv.input_shapes[0] == (4, 1, 576) and conv.output_shape == (4, 258, 5)
    report = archlint.lint(model, input_shapes=(4, 576))
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(x)
    assert 2 * report.summary.macs == counter.get_total_flops()
    assert not [f.code for f in report.findings if f.layer == conv.name and f.code in ("AL202", "AL301")]


@pytest.mark.parametrize("path", ["torch", "legacy"])
def test_an_unpadded_framing_conv_still_leaves_its_last_samples_unread(torch, tmp_path, path):
    """Without the pad, windows of 256 at stride 128 on 576 samples end at 512: the last 64 real
    samples are never read (AL202) and the conv gives 3 frames instead of 5 (AL301)."""
    module, x = _framing(torch, 0).eval(), torch.randn(4, 576)
    model = module if path == "torch" else str(export_onnx(module, x, tmp_path / f"{path}.onnx", path))
    report = archlint.lint(model, input_shapes=(4, 576))
    assert sorted(f.code for f in report.findings if f.code in ("AL202", "AL301")) == ["AL202", "AL301"]
