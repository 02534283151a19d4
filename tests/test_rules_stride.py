"""AL2xx (stride): window coverage and stride steps by hand and brute force, the rules, torchvision models."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from archlint.analyses.receptive_field import receptive_fields
from archlint.analyses.shapes import window_output_size
from archlint.api import (Config, Layer, Op, axis_coverage, lint, stride_steps, weighted_depths,
                          window_coverage)
from archlint.rules.stride import (AggressiveStrideStep, EarlyDownsampling, StrideSkipsInput,
                                   WindowMissesInputEdge, get_rules)

from conftest import chain_graph, count_calls, fixture_path, load_build_script


def _brute_force(n, k, s, p, d, windows):
    """(read, gap, edge) by listing every tap of every window, and of windows continued to the end."""
    taps = lambda ws: {w * s - p + j * d for w in ws for j in range(k)} & set(range(n))  # noqa: E731
    read = taps(range(windows))
    continued = taps(w for w in range(windows + n + p) if w < windows or w * s - p <= n - 1)
    return len(read), n - len(continued), len(continued) - len(read)


def test_axis_coverage_matches_brute_force():
    rng = random.Random(3)
    tried = 0
    while tried < 3000:
        n, k, s, p, d = rng.randint(1, 40), rng.randint(1, 6), rng.randint(1, 6), rng.randint(0, 5), rng.randint(1, 3)
        windows = window_output_size(n, k, s, p, rng.randint(0, 5), d, ceil_mode=rng.random() < 0.3)
        if windows <= 0:
            continue
        tried += 1
        cov = axis_coverage(n, k, s, p, d, windows)
        assert (cov.read, cov.gap, cov.edge) == _brute_force(n, k, s, p, d, windows), (n, k, s, p, d, windows)
        assert cov.size == n == cov.read + cov.gap + cov.edge


@pytest.mark.parametrize(("args", "expected"), [
    # 1x1/2 on 56 (ResNet layer2.0.downsample.0): even positions only
    ((56, 1, 2, 0, 1, 28), (28, 28, 0)),
    # 3x3/2 pad 0 on 224: 111 windows reach 222; a 112th (start 222) would read 223
    ((224, 3, 2, 0, 1, 111), (223, 0, 1)),
    # 3x3/2 pad 1 on 224: 112 windows, the last reads 221..223
    ((224, 3, 2, 1, 1, 112), (224, 0, 0)),
    # 7x7/2 pad 3 on 224 (ResNet stem): all read
    ((224, 7, 2, 3, 1, 112), (224, 0, 0)),
    # 3x3 dilation 2 stride 2 pad 2 on 32: taps 2w-2, 2w, 2w+2 -> evens
    ((32, 3, 2, 2, 2, 16), (16, 16, 0)),
    # 2x2/3 pool on 12: windows at 0, 3, 6, 9 read 0,1,3,4,6,7,9,10
    ((12, 2, 3, 0, 1, 4), (8, 4, 0)),
])
def test_axis_coverage_by_hand(args, expected):
    cov = axis_coverage(*args)
    assert (cov.read, cov.gap, cov.edge) == expected


def test_window_coverage_combines_axes_exactly():
    conv = Layer("c", Op.CONV, "Conv", (1, 4, 15, 28), ((1, 4, 32, 56),), kernel=(3, 1), stride=(2, 2),
                 pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1))
    cov = window_coverage(conv)
    # H: 3x/2 on 32 reads 0..30 (31, edge 1); W: 1x/2 on 56 reads the 28 evens (gap 28)
    assert [(a.read, a.gap, a.edge) for a in cov.axes] == [(31, 0, 1), (28, 28, 0)]
    assert (cov.positions, cov.read, cov.unread) == (32 * 56, 31 * 28, 32 * 56 - 31 * 28)
    assert cov.unread_fraction == Fraction(32 * 56 - 31 * 28, 32 * 56)
    assert window_coverage(Layer("r", Op.ACTIVATION, "Relu", (1, 4, 8, 8), ((1, 4, 8, 8),))) is None


def test_window_coverage_work_does_not_grow_with_the_axis():
    def coverage(n):
        conv = Layer("c", Op.CONV, "Conv", (1, 1, n // 2), ((1, 1, n),), kernel=(1,), stride=(2,),
                     pads_begin=(0,), pads_end=(0,), dilation=(1,))
        return count_calls(window_coverage, conv)

    (short, short_calls), (long, long_calls) = coverage(1_000), coverage(1_000_000)
    assert (long.read, long.unread_fraction) == (500_000, Fraction(1, 2))
    assert (short.read, short.unread_fraction) == (500, Fraction(1, 2))
    assert long_calls == short_calls


def _window(name, op, n_in, n_out, k, s, p=0, c=4):
    return Layer(name, op, op.value, (1, c, n_out, n_out), ((1, c, n_in, n_in),), kernel=(k, k), stride=(s, s),
                 pads_begin=(p, p), pads_end=(p, p), dilation=(1, 1), in_channels=c, out_channels=c)


def test_stride_steps_follow_effective_stride_and_skip_unchanged_and_global_layers():
    g = chain_graph(_window("conv", Op.CONV, 64, 32, 3, 2, 1), _window("same", Op.CONV, 32, 32, 3, 1, 1),
                     _window("pool", Op.MAX_POOL, 32, 8, 4, 4),
                     Layer("gap", Op.GLOBAL_POOL, "GlobalAveragePool", (1, 4, 1, 1), ((1, 4, 8, 8),)),
                     Layer("flat", Op.FLATTEN, "Flatten", (1, 4), ((1, 4, 1, 1),)))
    steps = stride_steps(g, receptive_fields(g))
    assert steps["conv"].factor == (2, 2) and steps["conv"].after == (2, 2)
    assert steps["pool"].before == (2, 2) and steps["pool"].factor == (4, 4) and steps["pool"].after == (8, 8)
    assert steps["pool"].extent == (8, 8)
    assert "same" not in steps and "gap" not in steps and "flat" not in steps
    assert weighted_depths(g) == {"x": 0, "conv": 1, "same": 2, "pool": 2, "gap": 2, "flat": 2}


def test_rules_metadata():
    assert get_rules() == [StrideSkipsInput, WindowMissesInputEdge, AggressiveStrideStep, EarlyDownsampling]
    assert [(r.code, r.name) for r in get_rules()] == [
        ("AL201", "stride-skips-input"), ("AL202", "window-misses-input-edge"),
        ("AL203", "aggressive-stride-step"), ("AL204", "early-downsampling")]
    defaults = {o.name: o.default for r in get_rules() for o in r.options}
    assert defaults == {"max-unread": 0.0, "max-edge-unread": 0, "max-layer-stride": 3,
                        "max-stem-stride": 4, "stem-depth": 2}


def test_stride_skips_input_message_and_data():
    report = lint(str(fixture_path("resnet_downsample_legacy.onnx")), Config(select=("AL201",)))
    (finding,) = report.findings
    assert finding.layer == "block.downsample"
    assert "3/4" in finding.message and "768 of 1024" in finding.message and "(0.75/0.0)" in finding.message
    assert finding.data["unread_fraction"] == Fraction(3, 4)
    assert "ResNet-D" in finding.fix


def test_edge_message_shows_unread_positions_against_limit():
    report = lint(str(fixture_path("edge_unread_legacy.onnx")), Config(select=("AL202",)))
    down = next(f for f in report.findings if f.layer == "down")
    assert "32x32 input" in down.message and "(1/0)" in down.message


def test_global_pool_written_as_window_is_not_an_aggressive_step():
    from archlint.api import lint_graph

    g = chain_graph(_window("conv", Op.CONV, 8, 8, 3, 1, 1), _window("pool", Op.AVG_POOL, 8, 1, 8, 8))
    report = lint_graph(g, Config(select=("AL203",)), rules=get_rules())
    assert report.findings == ()


# torchvision at 224x224. ResNet-18/50 (v1.5: the stride sits in the 3x3 conv) project the
# shortcut of layer2.0, layer3.0 and layer4.0 with a 1x1 stride-2 conv on 56, 28 and 14
# positions per axis: half the rows and half the columns are read, 3/4 of positions unread.
# Every other strided window in these models is 3x3 or larger with stride 2 and padding
# (k-1)/2 on even sizes, so it reads everything; no layer steps by more than 2; the stems
# reach at most stride 4 after one conv (ResNet, DenseNet: 7x7/2 + 3x3/2 pool).
RESNET_AL201 = [("layer2.0.downsample.0", 56 * 56), ("layer3.0.downsample.0", 28 * 28),
                ("layer4.0.downsample.0", 14 * 14)]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16", "densenet121", "mobilenet_v2",
                                  "mobilenet_v3_large", "efficientnet_b0"])
def test_torchvision_models(zoo, name):
    for path in zoo.exports(name):
        report = lint(str(path), Config(select=("AL2",)))
        found = [(f.code, f.layer, f.data.get("positions"), f.data.get("unread_fraction")) for f in report.findings]
        if name.startswith("resnet"):
            assert found == [("AL201", layer, n, 0.75) for layer, n in RESNET_AL201], path.name
        else:
            assert found == [], path.name


def test_explicit_pads_of_any_mode_are_padding_on_the_pytorch_path():
    """timm TResNet's blur pool: F.pad (reflect, replicate, constant) then an unpadded 3x3 stride-2 window.

    Every real position is read (windows w read 2w-1 .. 2w+1) and the map halves exactly, so no
    coverage or border rule fires; the windows carry the pad as padding, with its mode.
    """
    from archlint.frontends import load_graph

    module, shape = load_build_script().all_specs()["padded_blur_pools"][0]()
    report = lint(module, input_shapes=shape, select=["AL201", "AL202", "AL301", "AL302", "AL502"])
    assert not report.findings
    graph = load_graph(module, input_shapes=shape)
    assert not [layer for layer in graph.layers() if layer.op is Op.PAD]
    modes = {}
    for name, size in (("aa1/Conv", 32), ("aa2/Conv", 16), ("aa3/Conv", 8), ("pool", 4), ("down", 4)):
        layer = graph.layer(name)
        assert (layer.pads_begin, layer.pads_end, layer.input_shapes[0][2:]) == ((1, 1), (1, 1), (size, size))
        modes[name] = layer.mode
    assert list(modes.values())[:2] == ["reflect", "edge"] and modes["pool"] == modes["down"] == "reflect"


def _spatial_reduction_attention(keys_values_only: bool):
    """PVT-style attention after a 3x3/2 stem: a 4x4/4 conv ``sr`` shrinks the keys and values.

    With ``keys_values_only`` the queries come from the stem's full 16x16 grid (PVT); without,
    they come from ``sr`` too, so its stride reaches the output (a stride-4 step on the main path).
    """
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.stem = nn.Conv2d(3, dim, 3, stride=2, padding=1)
            self.sr = nn.Conv2d(dim, dim, 4, stride=4)
            self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

        def forward(self, x):
            x = self.stem(x)
            reduced = self.sr(x)
            queries = x if keys_values_only else reduced
            b, c, h, w = queries.shape
            q = self.q(queries.flatten(2).transpose(1, 2))
            k, v = self.kv(reduced.flatten(2).transpose(1, 2)).chunk(2, dim=-1)
            weights = (q @ k.transpose(-2, -1)).softmax(-1)
            return self.proj(weights @ v).transpose(1, 2).reshape(b, c, h, w)

    torch.manual_seed(0)
    return Attention()


@pytest.mark.parametrize("keys_values_only", [True, False])
def test_stride_that_shrinks_only_attention_keys_and_values_is_no_downsampling_step(keys_values_only):
    from archlint.frontends import load_graph

    model, shape = _spatial_reduction_attention(keys_values_only), (1, 3, 32, 32)
    graph = load_graph(model, input_shapes=shape)
    fields = receptive_fields(graph)
    assert fields["sr"].stride == (8, 8)  # the field itself is unchanged: 2 (stem) x 4 (sr)
    steps = stride_steps(graph, fields)
    assert steps["stem"].factor == (2, 2)
    report = lint(model, input_shapes=shape, select=["AL203", "AL204"])
    found = sorted((f.code, f.layer) for f in report.findings)
    if keys_values_only:  # the output keeps the stem's 16x16 grid: sr is no step of it
        assert "sr" not in steps and found == []
    else:  # the output is sr's 4x4 grid: 2 -> 8 in one layer, after two weighted layers
        assert steps["sr"].factor == (4, 4) and steps["sr"].after == (8, 8)
        assert found == [("AL203", "sr"), ("AL204", "sr")]


def _bilinear_attention(pooled_into_map: bool):
    """timm's BAT block in small (``bat_resnext26ts``): row and column mixing matrices from pooled maps.

    On 16x16, after a 3x3 ``stem``: adaptive max pools to 4x1 and 1x4 (windows 4x16 and 16x4,
    stride-4 steps along the pooled axis), then a conv reading each pooled map whole (``conv_p``,
    ``conv_q``) gives 4x4 matrices ``P``, ``Q``, softmaxed and enlarged to 16x16; the block adds
    ``P @ X @ Q`` to the map. With ``pooled_into_map`` the row-pooled map is also resized back
    and added to the output, so that pool's grid reaches the output (as pyramid pooling does).
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Bilinear(nn.Module):
        def __init__(self, dim=4, blocks=4):
            super().__init__()
            self.blocks = blocks
            self.stem = nn.Conv2d(3, dim, 3, padding=1)
            self.conv_p = nn.Conv2d(dim, blocks * blocks, (blocks, 1))
            self.conv_q = nn.Conv2d(dim, blocks * blocks, (1, blocks))

        def forward(self, x):
            x = self.stem(x)
            b, _, h, w = x.shape
            rows = F.adaptive_max_pool2d(x, (self.blocks, 1))
            cols = F.adaptive_max_pool2d(x, (1, self.blocks))
            p = self.conv_p(rows).view(b, 1, self.blocks, self.blocks).softmax(-1)
            q = self.conv_q(cols).view(b, 1, self.blocks, self.blocks).softmax(-2)
            p, q = F.interpolate(p, size=(h, h)), F.interpolate(q, size=(w, w))
            out = x + (p @ x) @ q
            return out + F.interpolate(rows, size=(h, w)) if pooled_into_map else out

    torch.manual_seed(0)
    return Bilinear()


@pytest.mark.parametrize("pooled_into_map", [False, True])
def test_pools_that_feed_only_a_mixing_matrix_are_no_downsampling_step(pooled_into_map):
    """Bilinear attention: the pools' 4x1 and 1x4 grids only shape ``P`` and ``Q``; ``P @ X @ Q`` keeps X's grid.

    Hand-derived fields: ``stem`` 3x3 (padding 1); the row pool (window 4x16, stride 4x16) sees
    3 + 3 = 6 rows and 3 + 15 = 18 columns; ``conv_p`` reads the whole 4x1 pooled map in one
    window, so ``P`` sees every pixel: rows -1 .. 16 (padding included), 18 per axis, as does
    every position of ``P @ X`` and ``P @ X @ Q``, which keep X's 16x16 positions.
    """
    import torch

    from archlint.frontends import load_graph

    model, shape = _bilinear_attention(pooled_into_map), (1, 3, 16, 16)
    graph = load_graph(model, input_shapes=shape)
    fields = receptive_fields(graph)
    rows, cols = (next(layer.name for layer in graph.layers() if layer.op is Op.MAX_POOL
                       and layer.output_shape[2:] == size) for size in ((4, 1), (1, 4)))
    assert (fields["stem"].size, fields["stem"].padding) == ((3, 3), (1, 1))
    assert (fields[rows].size, fields[rows].stride) == ((6, 18), (4, 16))
    assert fields["conv_p"].is_global and not fields["conv_p"].has_positions and fields["conv_p"].size == (18, 18)
    products = [layer.name for layer in graph.layers() if layer.op is Op.MATMUL]
    assert len(products) == 2
    for name in products:
        field = fields[name]
        assert field.is_global and field.positions == (2, 3) and field.extent == (16, 16)
        assert (field.size, field.padding) == ((18, 18), (1, 1))
    # independent check: one output position depends on every input pixel (gradient support)
    x = torch.randn(shape, requires_grad=True)
    model(x)[0, :, 5, 9].sum().backward()
    assert bool((x.grad.abs().sum(dim=(0, 1)) > 0).all())

    steps = stride_steps(graph, fields)
    found = sorted((f.code, f.layer) for f in lint(model, input_shapes=shape, select=["AL203", "AL204"]).findings)
    assert cols not in steps
    if pooled_into_map:  # the row pool's 4x1 grid is resized into the output: a stride-4 step of the map
        assert steps[rows].factor == (4, 16)
        assert ("AL203", rows) in found
    else:
        assert rows not in steps and found == []


def _pooling_attention():
    """MViTv2-style attention after a 3x3/2 stem (16x16, 8 channels): keys and values each pooled by a
    depthwise 3x3 conv with stride 4 and padding 1 (``pool_k``, ``pool_v``), queries on the full grid."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.stem = nn.Conv2d(3, dim, 3, stride=2, padding=1)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.pool_k = nn.Conv2d(dim, dim, 3, stride=4, padding=1, groups=dim, bias=False)
            self.pool_v = nn.Conv2d(dim, dim, 3, stride=4, padding=1, groups=dim, bias=False)

        def forward(self, x):
            x = self.stem(x)
            b, c, h, w = x.shape
            q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).chunk(3, dim=-1)
            k, v = (pool(t.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
                    for pool, t in ((self.pool_k, k), (self.pool_v, v)))
            weights = (q @ k.transpose(-2, -1)).softmax(-1)
            return self.proj(weights @ v).transpose(1, 2).reshape(b, c, h, w)

    torch.manual_seed(0)
    return Attention()


def test_layers_that_feed_only_keys_and_values_are_still_judged_for_cost_and_coverage():
    """Only the stride rules (AL203/AL204) leave key/value reductions alone: their grid is not the output's.

    PVT's ``sr`` (4x4/4 conv, 8 -> 8, 16x16 -> 4x4) costs 16 * 16 * 8 * 8 = 16,384 MACs; depthwise +
    pointwise 16 * (16 * 8 + 8 * 8) = 3,072 (AL401). MViTv2's ``pool_k``/``pool_v`` (3x3, stride 4,
    padding 1) on 16 positions read rows 4i-1 .. 4i+1: 11 of 16 per axis, rows 2, 6, 10, 14 in the
    gaps and row 15 past the last window, so 1 - (11/16)^2 = 135/256 of the keys and values the
    ``qkv`` projection computed are never read (AL201) and the last row and column are lost (AL202).
    """
    pvt, shape = _spatial_reduction_attention(True), (1, 3, 32, 32)
    found = [(f.code, f.layer, f.data) for f in lint(pvt, input_shapes=shape, select=["AL203", "AL401"]).findings]
    assert [(code, layer) for code, layer, _ in found] == [("AL401", "sr")]
    assert (found[0][2]["macs"], found[0][2]["macs_after"]) == (16384, 3072)

    report = lint(_pooling_attention(), input_shapes=shape, select=["AL201", "AL202", "AL203", "AL204"])
    found = sorted((f.code, f.layer) for f in report.findings)
    assert found == [("AL201", "pool_k"), ("AL201", "pool_v"), ("AL202", "pool_k"), ("AL202", "pool_v")]
    for finding in report.findings:
        if finding.code == "AL201":
            assert (finding.data["unread"], finding.data["positions"]) == (135, 256)
            assert finding.data["read_per_axis"] == [11, 11] and finding.data["gap_per_axis"] == [4, 4]
        else:
            assert finding.data["edge_per_axis"] == [1, 1]
