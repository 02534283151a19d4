"""Receptive fields against independent numbers: the literature, hand derivation, and gradients.

Convention (Araujo, Norris & Sim, Distill 2019): along one axis, output position ``x`` sees
input pixels ``[x*stride - padding, x*stride - padding + size - 1]``.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest

import archlint
from archlint.export import export_onnx

from conftest import fixture_path, load_specs

F = Fraction


def _by_op(report, op):
    """Rows of one op kind in topological order (unnamed merge layers are found this way)."""
    return [row for row in report.layers if row.op == op]


def _field(row):
    return tuple(row.receptive_field), tuple(row.effective_stride), tuple(row.effective_padding)


# --- literature -------------------------------------------------------------------------

@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_vgg16_pool5_field_matches_araujo_et_al(zoo, exporter):
    report = archlint.lint(zoo["vgg16"].paths[exporter])
    pool5 = report.layer("features.30")  # the fifth MaxPool2d of torchvision's VGG-16
    assert pool5.op == "max_pool"
    assert _field(pool5) == ((212, 212), (32, 32), (90, 90))


# --- hand-derived fields of the core fixtures -----------------------------------------------

# (size, stride, padding) per axis (H, W), derived by hand in fixtures/specs/core.py
CHAIN = {
    "conv1": ((3, 3), (1, 1), (1, 1)),
    "conv2": ((5, 5), (2, 2), (2, 2)),
    "pool": ((7, 7), (4, 4), (2, 2)),
    "conv3": ((23, 23), (4, 4), (10, 10)),  # dilation 2
    "conv4": ((31, 23), (8, 4), (14, 10)),  # kernel (3, 1), stride (2, 1): per axis
}
BRANCHES = {
    "stem": ((3, 3), (1, 1), (1, 1)),
    "conv_a": ((5, 5), (1, 1), (1, 1)),     # padded after only: sees [x-1, x+3]
    "conv_b": ((5, 5), (1, 1), (3, 3)),     # padded before only: sees [x-3, x+1]
    "short": ((7, 7), (2, 2), (3, 3)),
    "deep1": ((9, 9), (2, 2), (4, 4)),
    "deep2": ((13, 13), (2, 2), (6, 6)),
    "narrow": ((13, 13), (2, 2), (6, 6)),
    "wide": ((21, 21), (2, 2), (10, 10)),
    "head": ((21, 21), (2, 2), (10, 10)),
}
BRANCH_MERGES = {  # op -> fields of its layers in order
    "add": [((7, 7), (1, 1), (3, 3)),       # union [x-3, x+3] of two 5-wide windows
            ((13, 13), (2, 2), (6, 6))],    # shallow branch inside the deep one
    "concat": [((21, 21), (2, 2), (10, 10))],
}
UPDOWN = {
    "up0": ((2, 2), (F(1, 2), F(1, 2)), (F(1, 2), F(1, 2))),  # transposed conv k3 s2 p1 on the input
    "conv1": ((3, 3), (1, 1), (1, 1)),
    "conv2": ((5, 5), (2, 2), (2, 2)),
    "up1": ((6, 6), (1, 1), (3, 3)),        # transposed conv k2 s2: 5 + (2-1)*2/2
    "conv3": ((8, 8), (1, 1), (4, 4)),
    "conv4": ((10, 10), (2, 2), (5, 5)),
    # nearest x2 (asymmetric, floor): output y reads conv4 position floor(y/2), whose field
    # starts at 2*floor(y/2) - 5: y - 5 for even y, y - 6 for odd y, and is 10 wide; the
    # hull over both phases is [y - 6, y + 4]: size 11, stride 1, padding 6
    "up2": ((11, 11), (1, 1), (6, 6)),
    "head": ((11, 11), (1, 1), (6, 6)),
}


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_chain_fields_follow_kernel_stride_dilation_and_pooling(exporter):
    report = archlint.lint(fixture_path(f"core_chain_{exporter}.onnx"))
    for name, expected in CHAIN.items():
        assert _field(report.layer(name)) == expected, name
    summary = report.summary.receptive_field
    assert (summary.size, summary.stride, summary.padding) == CHAIN["conv4"]


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_global_pooling_makes_the_field_global(exporter):
    report = archlint.lint(fixture_path(f"core_chain_{exporter}.onnx"))
    doc = report.to_dict()
    rows = {row["name"]: row for row in doc["layers"]}
    for name in ("gap", "fc"):
        assert rows[name]["receptive_field_global"] is True
        assert rows[name]["effective_stride"] is None
        # a global field spans at least the whole 32x32 input
        assert all(s >= 32 for s in rows[name]["receptive_field"])
    assert rows["conv4"]["receptive_field_global"] is False
    assert doc["summary"]["receptive_field"]["layer"] != "gap"


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_branch_fields_are_the_union_of_aligned_paths(exporter):
    report = archlint.lint(fixture_path(f"core_branches_{exporter}.onnx"))
    for name, expected in BRANCHES.items():
        assert _field(report.layer(name)) == expected, name
    for op, fields in BRANCH_MERGES.items():
        assert [_field(row) for row in _by_op(report, op)] == fields, op


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_transposed_conv_and_upsampling_give_fractional_strides(exporter):
    report = archlint.lint(fixture_path(f"core_updown_{exporter}.onnx"))
    for name, expected in UPDOWN.items():
        assert _field(report.layer(name)) == expected, name
    up0 = {row["name"]: row for row in report.to_dict()["layers"]}["up0"]
    assert up0["effective_stride"] == [0.5, 0.5] and up0["effective_padding"] == [0.5, 0.5]


def test_asymmetric_padding_and_non_square_windows_are_tracked_per_axis():
    report = archlint.lint(fixture_path("core_asym_pad.onnx"))
    # conv: kernel (3, 5), strides (1, 2), pads begin (0, 1); pool k2 s2 padded on top only
    assert _field(report.layer("conv")) == ((3, 5), (1, 2), (0, 1))
    assert _field(report.layer("pool")) == ((4, 7), (2, 4), (1, 1))
    assert report.layer("conv").output_shape == (1, 4, 32, 16)
    assert report.layer("pool").output_shape == (1, 4, 16, 8)


# --- gradient-based check ------------------------------------------------------------------

def _positive_copy(module):
    """All weights positive, biases zero, MaxPool -> AvgPool of the same geometry."""
    import torch
    from torch import nn

    module = copy.deepcopy(module).eval()
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.MaxPool2d):
                setattr(child, attr, nn.AvgPool2d(sub.kernel_size, sub.stride, sub.padding,
                                                  ceil_mode=sub.ceil_mode, count_include_pad=True))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p_name, param in module.named_parameters():
            if p_name.endswith("bias"):
                param.zero_()
            else:
                param.copy_(torch.rand(param.shape, generator=gen) + 0.1)
    return module


def _gradient_support(module, size, layer, position):
    """Per axis (first, last) input pixel with nonzero d output[layer][:, :, y, x] / d input."""
    import torch

    captured = {}
    target = dict(module.named_modules())[layer]
    handle = target.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    x = torch.full((1, 3, size, size), 10.0, requires_grad=True)
    module(x)
    handle.remove()
    out = captured["out"]
    out[0, :, position[0], position[1]].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 1))
    support = []
    for axis in (0, 1):
        nz = grad.sum(dim=1 - axis).nonzero().flatten().tolist()
        assert nz, f"{layer}: no gradient reaches the input"
        support.append((nz[0], nz[-1]))
    return support, tuple(out.shape[2:])


def _check_against_gradient(report, module, layers, size=96):
    positive = _positive_copy(module)
    for layer in layers:
        row = report.layer(layer)
        # probe a few positions around the centre so that several phases are covered
        _, extent = _gradient_support(positive, size, layer, (0, 0))
        for dy, dx in ((0, 0), (1, 1), (1, 2)):
            pos = (extent[0] // 2 + dy, extent[1] // 2 + dx)
            support, _ = _gradient_support(positive, size, layer, pos)
            for axis, (first, last) in enumerate(support):
                assert 0 < first and last < size - 1, "probe too close to the border; enlarge the input"
                start = pos[axis] * row.effective_stride[axis] - row.effective_padding[axis]
                assert (first, last - first + 1) == (start, row.receptive_field[axis]), \
                    f"{layer} axis {axis} at {pos}: gradient sees [{first}, {last}], archlint " \
                    f"start {start} size {row.receptive_field[axis]}"


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_chain_fields_equal_the_gradient_support(exporter):
    report = archlint.lint(fixture_path(f"core_chain_{exporter}.onnx"))
    _check_against_gradient(report, load_specs().chain_module(), list(CHAIN))


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_multi_path_fields_equal_the_gradient_support(exporter):
    report = archlint.lint(fixture_path(f"core_branches_{exporter}.onnx"))
    # ``head`` sits after an add of unequal-depth branches, which sits after an add of
    # mirrored asymmetric paddings, and after a concat: every merge must take the union
    _check_against_gradient(report, load_specs().branches_module(), list(BRANCHES))


def test_integer_stride_layers_after_transposed_convs_equal_the_gradient_support():
    report = archlint.lint(fixture_path("core_updown_legacy.onnx"))
    _check_against_gradient(report, load_specs().updown_module(), ["conv1", "conv2"])


def test_pooled_and_dilated_branches_equal_the_gradient_support(tmp_path):
    import torch
    from torch import nn

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.proj = nn.Conv2d(3, 4, 1)
            self.dil = nn.Conv2d(4, 4, 3, padding=3, dilation=3)
            self.rect = nn.Conv2d(4, 4, (1, 5), stride=(3, 1), padding=(0, 2))
            self.out = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = torch.relu(self.conv(x)) + self.proj(self.pool(x))
            y = self.dil(y)
            return self.out(self.rect(y) * 2)

    module = Pooled()
    path = export_onnx(module, torch.randn(1, 3, 96, 96), tmp_path / "pooled.onnx", "legacy")
    report = archlint.lint(path)
    assert _field(report.layer("proj")) == ((3, 3), (2, 2), (1, 1))
    assert _field(report.layer("dil")) == ((15, 15), (2, 2), (7, 7))
    assert _field(report.layer("rect")) == ((15, 23), (6, 2), (7, 11))
    _check_against_gradient(report, module, ["conv", "proj", "dil", "rect", "out"])


def _check_contains_gradient_support(report, module, layers, size=96):
    """Fractional strides: the field may over-approximate but must contain what each position sees."""
    positive = _positive_copy(module)
    for layer in layers:
        row = report.layer(layer)
        _, extent = _gradient_support(positive, size, layer, (0, 0))
        for o in range(extent[0] // 2, extent[0] // 2 + 4):  # every phase of a x2 or x4 upsampling
            support, _ = _gradient_support(positive, size, layer, (o, o))
            for axis, (first, last) in enumerate(support):
                assert 0 < first and last < size - 1, "probe too close to the border; enlarge the input"
                start = o * row.effective_stride[axis] - row.effective_padding[axis]
                end = start + row.receptive_field[axis] - 1
                assert start <= first and last <= end, \
                    f"{layer} axis {axis} at {o}: gradient sees [{first}, {last}], archlint [{start}, {end}]"


def test_fields_after_transposed_convs_contain_the_gradient_support_at_every_phase():
    report = archlint.lint(fixture_path("core_updown_legacy.onnx"))
    _check_contains_gradient_support(report, load_specs().updown_module(), ["up1", "conv3", "conv4", "up2", "head"])


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsampling_field_contains_the_gradient_support_at_every_phase(tmp_path, mode):
    import torch
    from torch import nn

    module = nn.Sequential()
    module.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    module.add_module("up", nn.Upsample(scale_factor=2, mode=mode))
    module.add_module("out", nn.Conv2d(4, 2, 1))
    path = export_onnx(module, torch.randn(1, 3, 48, 48), tmp_path / "up.onnx", "legacy")
    _check_contains_gradient_support(archlint.lint(path), module, ["up"])


@pytest.mark.parametrize("mode, true_size, grid", [("nearest", 8, 8), ("bilinear", 16, 16)])
def test_upsampling_triple_exceeds_each_pixels_field_by_less_than_one_input_stride(mode, true_size, grid):
    """Stride-8 conv (field 8) then an 8x upsample: each output pixel's gradient support is 8
    (nearest) or 16 (bilinear) pixels wide; the one triple that holds every phase is wider by
    j * (1 - 1/G) (input stride j = 8, phase grid G), as the module docstring derives."""
    from torch import nn

    module = nn.Sequential()
    module.add_module("conv", nn.Conv2d(3, 4, 8, stride=8))
    module.add_module("up", nn.Upsample(scale_factor=8, mode=mode))
    report = archlint.lint(module, input_shapes=(1, 3, 96, 96))
    up = report.layer("up")
    positive = _positive_copy(module)
    widths = set()
    for phase in range(8):  # every output position modulo the upsampling factor
        support, _ = _gradient_support(positive, 96, "up", (40 + phase, 40 + phase))
        widths.add(support[0][1] - support[0][0] + 1)
    assert widths == {true_size}
    assert up.receptive_field[0] == true_size + 8 * (1 - F(1, grid))
    assert up.receptive_field[0] == {"nearest": 15, "bilinear": F(47, 2)}[mode]


def test_align_corners_stride_is_an_exact_fraction_printed_short():
    from torch import nn

    from archlint.reports.text import render_text

    module = nn.Sequential()
    module.add_module("conv", nn.Conv2d(3, 4, 3, stride=2, padding=1))  # 32 -> 16
    module.add_module("up", nn.Upsample(size=(30, 30), mode="bilinear", align_corners=True))
    report = archlint.lint(module, input_shapes=(1, 3, 32, 32))
    assert tuple(report.layer("up").effective_stride) == (F(30, 29), F(30, 29))  # 2 * (16 - 1) / (30 - 1)
    assert " /1.034 " in render_text([report], show_layers=True)  # 30/29 with 4 significant digits


# --- dense windows and matrices computed from the input ---------------------------------------

@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_conv_reading_the_whole_map_in_one_window_is_global(exporter):
    """timm VGG's head in small (fixture ``conv_dense_head``): the unpadded 7x7 conv on the 7x7 map is a dense layer.

    3x3 conv (padding 1) then 2x2/2 pool: field 4, stride 2, padding 1 at ``pool``. ``pre_logits.fc1``'s
    one output reads all 7 positions: pixels -1 .. 2*6 - 1 + 4 - 1 = 14, 16 per axis, and it is
    global, so the last spatial map is ``pool``.
    """
    report = archlint.lint(fixture_path(f"conv_dense_head_{exporter}.onnx"))
    assert _field(report.layer("pool")) == ((4, 4), (2, 2), (1, 1))
    dense = report.layer("pre_logits.fc1")
    assert dense.rf_global and tuple(dense.receptive_field) == (16, 16)
    assert report.summary.receptive_field.layer == "pool"


def test_matrix_from_the_input_summed_over_channels_is_pointwise_with_global_context():
    """Cross-covariance attention (XCiT) in small: ``A @ V`` with ``A`` a channel-by-channel matrix computed
    from the whole map and ``V`` the tokens of a 3x3 conv's map (channels by tokens).

    Each output token mixes the channels of its own token only: the field stays the conv's 3x3
    (stride 1, padding 1) on the token axis and, split back into the map, under the 3x3 conv
    after it (5x5), with global context.
    """
    from torch import nn

    class CrossCovariance(nn.Module):
        def __init__(self, dim=4):
            super().__init__()
            self.conv = nn.Conv2d(3, dim, 3, padding=1)
            self.head = nn.Conv2d(dim, dim, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            b, c, h, w = x.shape
            v = x.flatten(2)  # b, c, tokens
            a = (v @ v.transpose(1, 2)).softmax(-1)  # b, c, c: every token contributes
            return self.head((a @ v).reshape(b, c, h, w))

    report = archlint.lint(CrossCovariance(), input_shapes=(1, 3, 16, 16))
    product = _by_op(report, "matmul")[-1]
    assert product.output_shape == (1, 4, 256) and not product.rf_global and product.global_context
    assert _field(product) == ((3, 3), (1, 1), (1, 1))
    assert _field(report.layer("head")) == ((5, 5), (1, 1), (2, 2)) and report.layer("head").global_context
    assert report.summary.receptive_field.layer == "head"


def test_linear_attention_keeps_each_tokens_field_through_a_pad_of_channels():
    """timm EfficientViT's (MIT) linear attention in small: ``v`` gets a channel of ones (``F.pad``),
    ``K^T @ V`` sums over all tokens (global, no positions), and ``Q @ (K^T V)`` mixes each token's
    own channels with it: the 3x3 conv's field (3, stride 1, padding 1) with global context, then 5
    under the 3x3 conv ``head``.
    """
    from torch import nn
    from torch.nn import functional as F

    class LinearAttention(nn.Module):
        def __init__(self, dim=4):
            super().__init__()
            self.conv, self.qkv = nn.Conv2d(3, dim, 3, padding=1), nn.Conv2d(dim, 3 * dim, 1)
            self.head = nn.Conv2d(dim, dim, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            b, c, h, w = x.shape
            q, k, v = self.qkv(x).reshape(b, 3 * c, h * w).transpose(-1, -2).chunk(3, dim=-1)
            v = F.pad(v, (0, 1), mode="constant", value=1.0)
            out = F.relu(q) @ (F.relu(k).transpose(-1, -2) @ v)
            out = out[..., :-1] / (out[..., -1:] + 1e-5)
            return self.head(out.transpose(-1, -2).reshape(b, c, h, w))

    report = archlint.lint(LinearAttention(), input_shapes=(1, 3, 16, 16))
    pad, = _by_op(report, "pad")
    assert pad.output_shape == (1, 256, 5) and tuple(pad.receptive_field) == (3, 3)
    summary, applied = _by_op(report, "matmul")
    assert summary.rf_global and applied.output_shape == (1, 256, 5) and applied.global_context
    assert _field(applied) == ((3, 3), (1, 1), (1, 1))
    assert _field(report.layer("head")) == ((5, 5), (1, 1), (2, 2))
    assert report.summary.receptive_field.layer == "head"


@pytest.mark.parametrize("dim", [1, -1])
def test_stacked_branches_keep_their_positions_along_the_new_axis(dim):
    """timm's selective-kernel block (skresnet) in small: a 3x3 conv (field 3, padding 1), then a 3x3
    path (5, padding 2) and a 3x3 path dilated 2 (3 + 2 x 2 = 7, padding 3) stacked along a new axis
    (before the channels or after the map), weighted by a gate from their global mean and summed
    over that axis (timm: ``sum(1)``). Every position of the stack sees the union of the two paths, 7x7 with stride 1
    and padding 3, and so does the sum and the 1x1 head after it, with global context from the gate.
    """
    from torch import nn

    class SelectiveKernel(nn.Module):
        def __init__(self, dim=4):
            super().__init__()
            self.conv = nn.Conv2d(3, dim, 3, padding=1)
            self.paths = nn.ModuleList([nn.Conv2d(dim, dim, 3, padding=1), nn.Conv2d(dim, dim, 3, padding=2, dilation=2)])
            self.gate = nn.Conv2d(dim, 2 * dim, 1)
            self.head = nn.Conv2d(dim, dim, 1)

        def forward(self, x):
            x = self.conv(x)
            paths = torch.stack([path(x) for path in self.paths], dim=dim)
            weights = self.gate(combine(paths).mean((2, 3), keepdim=True)).reshape(1, 2, 4, 1, 1)
            weights = weights.softmax(1) if dim == 1 else weights.softmax(1).permute(0, 2, 3, 4, 1)
            return self.head(combine(paths * weights))

    def combine(paths):  # a sum over the new axis (over a last axis of five it reads as a pool: selected)
        return paths.sum(1) if dim == 1 else paths[..., 0] + paths[..., 1]

    import torch

    report = archlint.lint(SelectiveKernel(), input_shapes=(1, 3, 16, 16))
    stack, = _by_op(report, "concat")
    assert stack.output_shape == ((1, 2, 4, 16, 16) if dim == 1 else (1, 4, 16, 16, 2))
    assert _field(stack) == ((7, 7), (1, 1), (3, 3)) and not stack.global_context
    head = report.layer("head")
    assert _field(head) == ((7, 7), (1, 1), (3, 3)) and head.global_context and not head.rf_global
    assert report.summary.receptive_field.layer == "head"


@pytest.mark.parametrize("ratio", [2, 3])
def test_pooling_consecutive_tokens_within_rows_is_a_window_along_the_rows(ratio):
    """Next-ViT's spatial reduction in small: a 2x2/2 patch conv turns 16x16 pixels into an 8x8 map of
    tokens (field 2, stride 2), and ``AvgPool1d(ratio**2)`` averages that many consecutive tokens
    for the keys and values of attention.

    ratio 2: windows of 4 tokens never cross the end of a row of 8, so the pooled tokens are an
    8x2 map whose tokens see 2 pixels down and 2 + 3 x 2 = 8 across (stride 8); attention of every
    token over all of them makes the output global. ratio 3: windows of 9 tokens straddle rows, the
    pooled tokens are no map, and the field is lost there, as the report says.
    """
    from torch import nn

    class Reduced(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.patch = nn.Conv2d(3, dim, 2, stride=2)
            self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
            self.sr = nn.AvgPool1d(ratio ** 2, ratio ** 2)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)  # b, tokens, channels
            k, v = self.kv(self.sr(x.transpose(1, 2)).transpose(1, 2)).chunk(2, dim=-1)
            attention = (self.q(x) @ k.transpose(1, 2)).softmax(-1)
            return self.proj(attention @ v)

    report = archlint.lint(Reduced(), input_shapes=(1, 3, 16, 16))
    pool = report.layer("sr")
    if ratio == 2:
        assert pool.output_shape == (1, 8, 16) and _field(pool) == ((2, 8), (2, 8), (0, 0))
        assert report.layer("proj").rf_global and report.summary.receptive_field.covers_input
    else:
        assert pool.output_shape == (1, 8, 7) and pool.receptive_field is None
        assert report.summary.receptive_field is None
        assert any("lost at 'sr'" in note for note in report.summary.notes)


@pytest.mark.parametrize("mix_tokens", [True, False])
def test_token_mixing_mlp_makes_the_token_map_global_and_a_mean_over_tokens_is_global_pooling(mix_tokens):
    """MLP-Mixer in small: a 4x4/4 patch conv on 16x16 gives 16 tokens with a 4x4 field (stride 4).

    With ``mix_tokens`` a token-mixing MLP (dense layers over the token axis, 16 -> 32 -> 16) makes
    every token depend on every patch: the token map after it is global and still holds the
    tokens, so it is the last spatial map and covers the input. Without it (a channel MLP only),
    the tokens keep their 4x4 field, and the mean over tokens before the head is global pooling:
    AL503 judges the last token map, 4/16 of the input.
    """
    from torch import nn

    class Mixer(nn.Module):
        def __init__(self, dim=8, tokens=16):
            super().__init__()
            self.patch = nn.Conv2d(3, dim, 4, stride=4)
            self.tokens = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(), nn.Linear(2 * tokens, tokens))
            self.channels, self.head = nn.Linear(dim, dim), nn.Linear(dim, 10)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)  # b, tokens, channels
            if mix_tokens:
                x = x + self.tokens(x.transpose(1, 2)).transpose(1, 2)
            x = x + self.channels(x)
            return self.head(x.mean(1))

    report = archlint.lint(Mixer(), input_shapes=(1, 3, 16, 16), select=["AL503"])
    last = _by_op(report, "add")[-1]
    summary = report.summary.receptive_field
    assert summary.layer == last.name and last.output_shape == (1, 16, 8)
    mean = next(row for row in report.layers if row.output_shape == (1, 8) and row.op == "norm")
    assert mean.rf_global
    if mix_tokens:
        assert last.rf_global and summary.covers_input and tuple(last.receptive_field) == (16, 16)
        assert not report.findings
    else:
        assert _field(last) == ((4, 4), (4, 4), (0, 0)) and not last.rf_global
        [finding] = report.findings
        assert finding.layer == last.name and finding.data["receptive_field"] == [4, 4]
        assert finding.data["head"] == mean.name and finding.data["min_coverage"] == 0.25
