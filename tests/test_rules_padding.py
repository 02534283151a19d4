"""AL3xx (border padding): the border-loss analysis on hand-built graphs, and the rules' docs and output."""

from __future__ import annotations

from pathlib import Path

import pytest

from archlint.api import (Config, Graph, Layer, Op, border_loss, border_loss_ends, cumulative_border_losses, lint,
                          lint_graph, same_padding)
from archlint.analyses.receptive_field import receptive_fields
from archlint.canonical import canonical_graph
from archlint.rules.padding import CumulativeBorderLoss, UnpaddedShrinkingWindow, get_rules

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"


class _Builder:
    """A chain (or tree) of layers on one 1xCxNxN input, shapes given by hand."""

    def __init__(self, size: int, channels: int = 4):
        self.g = Graph(model="hand-built", inputs=["x"], outputs=[], unsupported_ops={})
        self.g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, channels, size, size)))
        self.c = channels

    def window(self, name, after, size_in, size_out, k=3, s=1, p=0, d=1, op=Op.CONV, pad_end=None):
        pe = p if pad_end is None else pad_end
        layer = Layer(name, op, "Conv", (1, self.c, size_out, size_out), ((1, self.c, size_in, size_in),),
                      kernel=(k, k), stride=(s, s), pads_begin=(p, p), pads_end=(pe, pe), dilation=(d, d),
                      in_channels=self.c, out_channels=self.c)
        return self._add(layer, after)

    def pad(self, name, after, size_in, p):
        layer = Layer(name, Op.PAD, "Pad", (1, self.c, size_in + 2 * p, size_in + 2 * p),
                      ((1, self.c, size_in, size_in),), pads_begin=(p, p), pads_end=(p, p), mode="reflect")
        return self._add(layer, after)

    def _add(self, layer, after):
        self.g.add_node(layer.name, layer=layer)
        self.g.add_edge(after, layer.name, index=0)
        self.g.graph["outputs"] = [layer.name]
        return layer.name


@pytest.mark.parametrize(("k", "d", "expected"), [(1, 1, (0, 0)), (3, 1, (1, 1)), (5, 1, (2, 2)), (3, 2, (2, 2)),
                                                  (7, 3, (9, 9)), (2, 1, (0, 1)), (4, 1, (1, 2)), (2, 3, (1, 2))])
def test_same_padding_is_half_the_dilated_span(k, d, expected):
    assert same_padding(k, d) == expected
    assert sum(expected) == d * (k - 1)


def test_stride_two_conv_on_odd_input_loses_one_output():
    # 31 -> 3x3 s2 p0 -> floor(28/2)+1 = 15 < ceil(31/2) = 16: one output = 2 px
    b = _Builder(31)
    b.window("c", "x", 31, 15, s=2)
    loss = border_loss(b.g, b.g.layer("c"), receptive_fields(b.g))
    assert (loss.kept_size, loss.output_size, loss.lost) == ((16, 16), (15, 15), (2, 2))
    assert [int(p) for p in loss.pixels] == [2, 2]


def test_loss_is_scaled_by_the_effective_stride_of_the_input():
    # stride-4 stem (padded), then an unpadded 5x5: 4 px of its input = 16 input px
    b = _Builder(64)
    b.window("stem", "x", 64, 16, k=4, s=4)
    b.window("c", "stem", 16, 12, k=5)
    fields = receptive_fields(b.g)
    assert border_loss(b.g, b.g.layer("stem"), fields) is None  # 4x4 stride 4 tiles the map
    loss = border_loss(b.g, b.g.layer("c"), fields)
    assert loss.lost == (4, 4) and [int(p) for p in loss.pixels] == [16, 16]
    assert loss.padding_needed == ((2, 2), (2, 2))


@pytest.mark.parametrize(("k", "s", "p", "pe", "size_out"), [
    (3, 1, 1, 1, 16),  # padded
    (3, 1, 2, 2, 18),  # over-padded: grows, no loss
    (2, 1, 0, 1, 16),  # even kernel, asymmetric padding
    (2, 2, 0, 0, 8),   # non-overlapping windows
    (1, 1, 0, 0, 16),  # 1x1
])
def test_windows_that_keep_their_size_are_not_losses(k, s, p, pe, size_out):
    b = _Builder(16)
    b.window("c", "x", 16, size_out, k=k, s=s, p=p, pad_end=pe)
    assert border_loss(b.g, b.g.layer("c"), receptive_fields(b.g)) is None


def test_explicit_pad_layer_counts_as_the_windows_padding():
    b = _Builder(16)
    b.pad("c/Pad", "x", 16, 1)
    b.window("c", "c/Pad", 18, 16)
    g = canonical_graph(b.g)
    assert border_loss(g, g.layer("c"), receptive_fields(g)) is None
    # a Pad of 1 before a 5x5 is not enough: 16 -> 18 -> 14, 2 px short, padding (1, 1) of (2, 2)
    b = _Builder(16)
    b.pad("c/Pad", "x", 16, 1)
    b.window("c", "c/Pad", 18, 14, k=5)
    g = canonical_graph(b.g)
    loss = border_loss(g, g.layer("c"), receptive_fields(g))
    assert loss.input_size == (16, 16) and loss.lost == (2, 2)
    assert loss.padding == ((1, 1), (1, 1)) and loss.padding_needed == ((2, 2), (2, 2))


def test_overlapping_pool_without_padding_is_a_loss():
    b = _Builder(32)
    b.window("pool", "x", 32, 15, k=3, s=2, op=Op.MAX_POOL)
    loss = border_loss(b.g, b.g.layer("pool"), receptive_fields(b.g))
    assert loss.lost == (2, 2) and loss.padding_needed == ((1, 1), (1, 1))


def test_branches_that_shrink_after_a_split_each_end_a_path():
    # trunk 32 -> 30; branch a: 30 -> 28 -> 26 (6 px); branch b: 30 -> 26 with a 5x5 (6 px), then padded
    b = _Builder(32)
    b.window("trunk", "x", 32, 30)
    b.window("a1", "trunk", 30, 28)
    b.window("a2", "a1", 28, 26)
    b.window("b1", "trunk", 30, 26, k=5)
    b.window("b2", "b1", 26, 26, p=1)
    total = cumulative_border_losses(b.g, receptive_fields(b.g))
    assert [int(p) for p in total["a2"].pixels] == [6, 6] and total["a2"].layers == ("trunk", "a1", "a2")
    assert [int(p) for p in total["b2"].pixels] == [6, 6] and total["b2"].layers == ("trunk", "b1")
    assert float(total["b2"].fraction) == 6 / 32
    assert border_loss_ends(b.g, total) == ["a2", "b1"]


def test_cumulative_rule_reports_each_path_end_above_the_limit():
    b = _Builder(32)
    b.window("trunk", "x", 32, 30)
    b.window("a1", "trunk", 30, 28)
    b.window("b1", "trunk", 30, 24, k=7)
    report = lint_graph(b.g, Config(select=("AL302",)), rules=get_rules())
    # a: 2 + 2 = 4 of 32 = 0.125; b: 2 + 6 = 8 of 32 = 0.25
    assert {f.layer: f.data["fraction"] for f in report.findings} == {"a1": 0.125, "b1": 0.25}
    report = lint_graph(b.g, Config(select=("AL302",), options={"max-border-loss": 0.2}), rules=get_rules())
    assert [f.layer for f in report.findings] == ["b1"]


def test_messages_name_the_layer_and_show_sizes_and_padding():
    report = lint(str(MODELS / "mixed_valid_net_legacy.onnx"), select=("AL3",))
    by = {(f.code, f.layer): f for f in report.findings}
    dilated = by["AL301", "dilated"]
    assert "'dilated'" in dilated.message and "15x15 to 11x11" in dilated.message
    assert "8 input px per axis" in dilated.message and "padding 2 per side" in dilated.message
    even = by["AL301", "even"]
    assert "(0 before, 1 after)" in even.message and "even kernel" in even.fix
    total = by["AL302", "even"]
    assert "12x12 of 32x32" in total.message and "38% > 10%" in total.message
    assert dilated.severity.value == "info" and total.severity.value == "warning"


@pytest.mark.parametrize("model", ["valid_conv_chain_5", "same_conv_chain_5", "mixed_valid_net"])
def test_both_exporters_give_equal_findings(model):
    def findings(variant):
        report = lint(str(MODELS / f"{model}_{variant}.onnx"), select=("AL3",))
        return [(f.code, f.layer, f.message, f.to_dict()["data"]) for f in report.findings]
    assert findings("legacy") == findings("dynamo")


@pytest.mark.parametrize(("rule", "fixture", "expected"), [
    (UnpaddedShrinkingWindow, "valid_conv_chain_5", {"body.2", "body.4", "body.6", "body.8", "body.10"}),
    (CumulativeBorderLoss, "valid_conv_chain_5", {"body.10"}),
])
def test_docs_have_sections_options_and_a_failing_example(rule, fixture, expected):
    sections = rule.doc_sections()
    for title in ("What it flags", "Why it matters", "Example", "Fix"):
        assert sections.get(title), title
    for option in rule.options:
        assert f"`{rule.code}.{option.name}`" in rule.options_doc() and option.help
    assert f"`{fixture}`" in sections["Example"]
    report = lint(str(MODELS / f"{fixture}_legacy.onnx"), select=(rule.code,))
    assert {f.layer for f in report.findings} == expected


def test_tf_same_pad_of_a_split_chunk_is_the_windows_padding():
    """timm's MixedConv2d of Conv2dSame (tf_mixnet): each chunk of a split is F.pad-ed by the TF 'same'
    amounts (1 before, 2 after for a 5x5 stride-2 window on 32), then convolved without padding:
    ceil(32/2) = 16 outputs, no border loss."""
    import torch
    import torch.nn.functional as F

    from archlint.frontends import load_graph

    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList([torch.nn.Conv2d(4, 4, k, stride=2, groups=4) for k in (3, 5)])

        def forward(self, x):
            chunks = torch.split(x, [4, 4], dim=1)
            pads = ((0, 1, 0, 1), (1, 2, 1, 2))  # TF 'same' for k=3 and k=5, stride 2, on 32
            return torch.cat([conv(F.pad(c, p)) for conv, c, p in zip(self.convs, chunks, pads)], 1)

    module, shape = Mixed(), (1, 8, 32, 32)
    assert not lint(module, input_shapes=shape, select=["AL301", "AL302", "AL202"]).findings
    graph = load_graph(module, input_shapes=shape)
    assert not [layer for layer in graph.layers() if layer.op is Op.PAD]
    assert graph.layer("convs.1").pads_begin == (1, 1) and graph.layer("convs.1").pads_end == (2, 2)
