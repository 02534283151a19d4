"""Checkerboard (AL701), gridding (AL702) and misaligned merges (AL703): every number against an
independent computation with torch (ones scattered by a transposed conv, the support of a
one-hot gradient, the centres of gradient supports), on the fixtures and on torchvision models.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache, reduce

import pytest
import torch

import archlint
from archlint.analyses.upsampling import axis_phase_counts

from conftest import import_torchvision, load_build_script

F = torch.nn.functional


@lru_cache(maxsize=None)
def _specs():
    return load_build_script().all_specs()


def _module(name: str):
    torch.manual_seed(0)
    return _specs()[name][0]()


def _lint(module, shape, code):
    return [f for f in archlint.lint(module.eval(), input_shapes=shape, select=[code]).findings]


def _ones_(module):
    """Every conv weight 1 and bias 0: with positive inputs nothing is clipped, so a gradient's
    support is exactly the set of positions an output reads."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return module


# --- AL701: phase coverage of transposed convs ---------------------------------------------

@pytest.mark.parametrize("kernel,stride,dilation,padding", [
    (k, s, d, p) for k in (1, 2, 3, 4, 5, 7) for s in (1, 2, 3, 4) for d in (1, 2, 3) for p in (0, 1, 2)])
def test_phase_counts_match_ones_scattered_by_a_transposed_conv(kernel, stride, dilation, padding):
    n = 48
    out = F.conv_transpose1d(torch.ones(1, 1, n), torch.ones(1, 1, kernel), stride=stride, padding=padding,
                             dilation=dilation)[0, 0]
    margin = dilation * (kernel - 1) + stride
    counts = axis_phase_counts(kernel, stride, dilation, padding)
    for o in range(margin, out.numel() - margin):
        assert out[o].item() == counts[o % stride], (o, counts)


def _scattered_extremes(layer):
    """Most and least contributions over the interior outputs of a 2-D transposed conv, by scattering ones."""
    k, s, p, d = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    out = F.conv_transpose2d(torch.ones(1, 1, 40, 40), torch.ones(1, 1, *k), stride=s, padding=p, dilation=d)[0, 0]
    margin = max(d[0] * (k[0] - 1), d[1] * (k[1] - 1)) + max(s)
    inner = out[margin:-margin, margin:-margin]
    return int(inner.max().item()), int(inner.min().item())


@pytest.mark.parametrize("fixture", ["decoder_k3s2", "decoder_k4s2", "decoder_k2s2", "unpool_k1s2"])
def test_checkerboard_findings_match_scattered_ones(fixture):
    module, shape = _module(fixture)
    found = {f.layer: f for f in _lint(module, shape, "AL701")}
    for name in ("up1", "up2"):
        most, least = _scattered_extremes(getattr(module, name))
        if most == least:
            assert name not in found
            continue
        data = found[name].data
        assert (data["most"], data["least"]) == (most, least)
        assert data["ratio"] == (most / least if least else None)


# --- AL702: gridding, against the support of a one-hot gradient -----------------------------

def _support(module, channels: int, size: int):
    """Rows and columns of the input that output (size//2, size//2) depends on, and their count in 2-D."""
    x = torch.ones(1, channels, size, size, requires_grad=True)
    module(x)[0, :, size // 2, size // 2].sum().backward()
    mask = x.grad[0].abs().sum(0) > 0
    rows = torch.nonzero(mask.any(1)).flatten().tolist()
    cols = torch.nonzero(mask.any(0)).flatten().tolist()
    return rows, cols, int(mask.sum().item())


def test_gridding_numbers_match_one_hot_gradient_support():
    module, shape = _module("dilated_chain_222")
    finding, = _lint(module, shape, "AL702")
    rows, cols, read = _support(_ones_(module).body, 4, 64)   # the chain's input map: the stem's output
    span = (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    steps = (reduce(math.gcd, [r - rows[0] for r in rows]), reduce(math.gcd, [c - cols[0] for c in cols]))
    assert finding.layer == "body.4"
    assert tuple(finding.data["span"]) == span == (13, 13)
    assert tuple(finding.data["read"]) == (len(rows), len(cols))
    assert tuple(finding.data["step"]) == steps == (2, 2)
    assert finding.data["unread_fraction"] == 1 - Fraction(read, math.prod(span))
    assert f"{169 - read}/169" in finding.message


def test_hybrid_rates_and_a_closing_conv_leave_no_lattice():
    module, shape = _module("dilated_chain_125")
    assert not _lint(module, shape, "AL702")
    rows, cols, _ = _support(_ones_(module).body[2:], 4, 64)   # from the first dilated conv on
    assert reduce(math.gcd, [r - rows[0] for r in rows]) == 1
    module, shape = _module("dilated_chain_222_closed")
    assert not _lint(module, shape, "AL702")
    rows, cols, read = _support(_ones_(module).body, 4, 64)
    assert read == len(rows) * len(cols) == 15 * 15



class _SelectiveKernel(torch.nn.Module):
    """Three blocks on 4 channels, each summing a 3x3 dilation-2 path and, with ``plain``, an undilated
    3x3 path over the same map (timm's selective-kernel convs, whose branches are summed)."""

    def __init__(self, plain: bool):
        super().__init__()
        self.dilated = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2) for _ in range(3))
        self.plain = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)) if plain else None

    def forward(self, x):
        for i, conv in enumerate(self.dilated):
            x = conv(x) + self.plain[i](x) if self.plain is not None else conv(x)
        return x


@pytest.mark.parametrize("plain", [True, False])
def test_a_summed_undilated_branch_fills_the_lattice(plain):
    """With the plain 3x3 path summed in each block the output reads every row and column of its
    13x13 span (145 of the 169 positions in 2-D: no lattice, so neighbours share inputs) and AL702
    stays quiet; without it, the 2, 2, 2 run reads a 7x7 lattice of 13x13 and AL702 fires."""
    torch.manual_seed(0)
    module = _SelectiveKernel(plain)
    rows, cols, read = _support(_ones_(_SelectiveKernel(plain)), 4, 64)
    found = _lint(module, (1, 4, 64, 64), "AL702")
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (13, 13)
    if plain:
        assert (len(rows), len(cols), read) == (13, 13, 145) and not found
    else:
        finding, = found
        assert read == 7 * 7 and finding.data["unread_fraction"] == Fraction(120, 169)

def _dilated_footprint(convs) -> tuple[int, int]:
    """Offsets one output reads through 3x3 convs of the given dilations (each also reachable by its
    block's identity shortcut): (positions read, span) along one axis."""
    offsets = {0}
    for d in convs:
        offsets = {o + t for o in offsets for t in (-d, 0, d)}
    return len(offsets), max(offsets) - min(offsets) + 1


@pytest.fixture(scope="module")
def segmentation():
    tv = import_torchvision()
    with torch.device("meta"):
        return {name: getattr(tv.models.segmentation, name)(weights_backbone=None)
                for name in ("deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large")}


def test_deeplabv3_and_fcn_heads_close_the_gridded_backbone(segmentation):
    shape = (1, 3, 128, 128)
    for name in ("deeplabv3_resnet50", "fcn_resnet50"):
        model = segmentation[name]
        assert not _lint(model, shape, "AL702"), name
        # the head's first layer is an undilated 3x3 conv: it reads all four lattices
        head = next(m for m in model.classifier.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
                    and m.dilation == (1, 1))
        assert head.padding == (1, 1)
    backbone = segmentation["deeplabv3_resnet50"].backbone
    finding, = _lint(backbone, shape, "AL702")
    blocks = list(backbone.layer3)[1:] + list(backbone.layer4)
    rates = [b.conv2.dilation[0] for b in blocks]
    assert rates == [2, 2, 2, 2, 2, 2, 4, 4] and backbone.layer3[0].conv2.dilation == (1, 1)
    read, span = _dilated_footprint(rates)
    assert finding.layer == "layer4.2.conv2" and finding.data["start"].startswith("layer3.1")
    assert finding.data["read"] == [read, read] == [21, 21] and finding.data["span"] == [span, span] == [41, 41]


def test_lraspp_upsamples_its_gridded_branch(segmentation):
    model = segmentation["lraspp_mobilenet_v3_large"]
    finding, = _lint(model, (1, 3, 128, 128), "AL702")
    dilated = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d) and m.dilation != (1, 1)]
    assert [(m.kernel_size, m.dilation) for m in dilated] == [((5, 5), (2, 2))] * 3
    offsets = {0}
    for _ in dilated:
        offsets = {o + 2 * t for o in offsets for t in range(-2, 3)}
    assert finding.data["read"] == [len(offsets)] * 2 and finding.data["span"] == [max(offsets) - min(offsets) + 1] * 2


# --- AL703: merge shifts, against the centres of gradient supports --------------------------

def _centres(branch, shape, axis_positions):
    """Centre (mean of first and last input row read) of the support of each output row, for the given rows."""
    x = torch.ones(*shape, requires_grad=True)
    out = branch(x)
    centres = []
    for r in axis_positions:
        x.grad = None
        out[0, :, r, out.shape[-1] // 2].sum().backward(retain_graph=True)
        rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten().tolist()
        centres.append((rows[0] + rows[-1]) / 2)
    return centres


def test_nearest_skip_shift_is_the_mean_offset_of_the_copied_coarse_centres():
    module, shape = _module("nearest_skip")
    finding, = _lint(module, shape, "AL703")
    m = _ones_(module)
    big = (1, 3, 96, 96)  # fully convolutional: a larger input keeps one period away from the padded border
    rows = list(range(32, 48))  # one period of the 16x nearest copy
    up = _centres(lambda x: m.up(m.coarse(m.stem(x))), big, rows)
    fine = _centres(lambda x: m.fine(m.stem(x)), big, rows)
    shift = sum(f - u for f, u in zip(fine, up)) / len(rows)
    assert shift == 7.5
    assert finding.data["shift"] == [shift, shift] and finding.data["branches"] == ["up", "fine"]


def test_shifted_skip_is_half_a_pixel_off():
    module, shape = _module("shifted_skip")
    m = _ones_(module)
    rows = [4, 5, 6]
    down = _centres(lambda x: m.down(m.stem(x)), shape, rows)
    pool = _centres(lambda x: m.pool(m.stem(x)), shape, rows)
    assert {p - d for p, d in zip(pool, down)} == {0.5}
    finding, = archlint.lint(module, input_shapes=shape, select=["AL703"],
                             options={"AL703.min-shift": 0.5, "AL703.min-shift-positions": 0.25}).findings
    assert finding.data["shift"] == [0.5, 0.5] and finding.data["shift_in_strides"] == [0.25, 0.25]
