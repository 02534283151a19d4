"""The PyTorch frontend: naming, BatchNorm folding, attributes, source lines, fallback, files and safety."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import archlint
from archlint.errors import ModelLoadError
from archlint.graph import Op

from conftest import fixture_path, run_cli

nn = torch.nn
F = torch.nn.functional


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        return self.relu(out + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.layer1 = nn.Sequential(Block())
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.layer1(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _graph(module, shape):
    from archlint.frontends import load_graph

    return load_graph(module, input_shapes=shape)


def test_layers_are_named_by_module_path_like_the_onnx_frontend():
    g = _graph(Net(), (1, 3, 16, 16))
    names = [layer.name for layer in g.layers()]
    # BatchNorm folded into layer1.0.conv1; the shared relu is called twice; functional ops by scope
    assert names == ["x", "stem", "Relu", "layer1.0.conv1", "layer1.0.relu", "layer1.0.conv2", "layer1.0/Add",
                     "layer1.0.relu_1", "GlobalAveragePool", "Flatten", "fc"]
    assert g.layer("layer1.0/Add").op is Op.ADD
    assert g.graph["inputs"] == ["x"] and g.graph["outputs"] == ["fc"]
    assert g.inputs_of("layer1.0/Add") == ("layer1.0.conv2", "Relu")


def test_batchnorm_is_folded_into_the_conv_and_its_parameters_are_counted_there():
    module = Net()
    report = archlint.lint(module, input_shapes=(1, 3, 16, 16))
    conv1 = next(r for r in report.layers if r.name == "layer1.0.conv1")
    assert conv1.params == 4 * 4 * 9 + 4 + 4  # conv weight (no bias) + BN scale + BN shift
    assert not any("bn1" in r.name for r in report.layers)
    assert report.summary.params == sum(p.numel() for p in module.parameters())
    assert any("BatchNorm" in note for note in report.summary.notes)


def test_batchnorm_not_after_a_conv_stays_a_norm_layer():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))
    g = _graph(module, (1, 3, 8, 8))
    assert g.layer("2").op is Op.NORM
    assert g.layer("2").param_shapes == ((4,), (4,))


def test_example_inputs_and_input_shapes_give_the_same_report():
    a = archlint.lint(Net(), example_inputs=torch.randn(1, 3, 16, 16))
    b = archlint.lint(Net(), input_shapes=(1, 3, 16, 16))
    assert [(r.name, r.macs, r.output_shape) for r in a.layers] == [(r.name, r.macs, r.output_shape) for r in b.layers]
    assert a.format == "torch"


def test_macs_follow_from_the_shapes():
    report = archlint.lint(Net(), input_shapes=(1, 3, 16, 16))
    rows = {r.name: r for r in report.layers}
    assert rows["stem"].macs == 4 * 8 * 8 * 3 * 9  # 8x8 output, 3 input channels, 3x3 kernel
    assert rows["layer1.0.conv2"].macs == 4 * 8 * 8 * 4 * 9
    assert rows["fc"].macs == 40


def test_window_attributes_are_normalized():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.same = nn.Conv2d(3, 4, (3, 4), padding="same", dilation=(1, 2))
            self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
            self.adapt = nn.AdaptiveAvgPool2d((2, 4))
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.pad = nn.ZeroPad2d((1, 2, 3, 4))

        def forward(self, x):
            x = self.pool(self.same(x))
            y = x.mean((2, 3), keepdim=True)
            x = self.pad(self.up(self.adapt(x)))
            return x[:, :, 1::2, 2:], y

    g = _graph(M(), (1, 3, 15, 15))  # 15 -> 8 by the ceil-mode pool, then 8x8 -> 2x4
    same = g.layer("same")
    assert (same.kernel, same.dilation, same.pads_begin, same.pads_end) == ((3, 4), (1, 2), (1, 3), (1, 3))
    pool = g.layer("pool")
    assert (pool.kernel, pool.stride, pool.pads_begin, pool.ceil_mode) == ((3, 3), (2, 2), (1, 1), True)
    adapt = g.layer("adapt")
    assert (adapt.op, adapt.kernel, adapt.stride) == (Op.AVG_POOL, (4, 2), (4, 2))  # 8x8 -> 2x4
    assert g.layer("ReduceMean").op is Op.GLOBAL_POOL
    up = g.layer("up")
    assert (up.op, up.mode, up.coordinate_mode, up.scales) == (Op.RESIZE, "linear", "align_corners", (2.0, 2.0))
    pad = g.layer("pad")
    assert (pad.pads_begin, pad.pads_end) == ((3, 1), (4, 2))
    sl = g.layer("Slice")
    assert (sl.op, sl.starts, sl.stride) == (Op.SLICE, (1, 2), (2, 1))


def test_pad_amounts_computed_from_the_input_size_fold_into_the_window():
    class PadToWindow(nn.Module):  # Swin-style: pad the map up to a multiple of the window
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 4, stride=4)

        def forward(self, x):
            h, w = x.shape[-2:]
            return self.patch(F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4)))

    patch = _graph(PadToWindow(), (1, 3, 30, 29)).layer("patch")  # padded to 32x32: 8x8 windows
    report = archlint.lint(PadToWindow(), input_shapes=(1, 3, 30, 29))
    assert (patch.pads_begin, patch.pads_end) == ((0, 0), (2, 3))
    assert {r.name: r for r in report.layers}["patch"].macs == 8 * 8 * 8 * 3 * 16
    assert not [f for f in report.findings if f.layer == "patch" and f.code in ("AL201", "AL202", "AL301")]


def test_layers_carry_the_source_line_of_the_call():
    g = _graph(Net(), (1, 3, 16, 16))
    lines, start = inspect.getsourcelines(Block.forward)
    expected = start + next(i for i, text in enumerate(lines) if "self.conv2(out)" in text)
    source = g.layer("layer1.0.conv2").source
    assert source is not None and Path(source.file) == Path(__file__) and source.line == expected


def test_untraceable_module_falls_back_to_torch_export():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(3, 4, 5, padding=2)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            if x.shape[-1] > 8:  # control flow on a size: symbolic tracing cannot follow it
                return self.bn(self.b(x))
            return self.a(x)

    module = Branchy()
    report = archlint.lint(module, input_shapes=(1, 3, 16, 16))
    names = [r.name for r in report.layers]
    assert names == ["x", "b"]
    assert any("torch.export" in note for note in report.summary.notes)
    assert report.layers[1].receptive_field == (5, 5)
    assert report.summary.params == sum(p.numel() for n, p in module.named_parameters() if not n.startswith("a."))


def test_autocast_and_no_grad_regions_of_an_exported_module_count_like_the_rest():
    from torch.utils.flop_counter import FlopCounterMode

    class Regions(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3)
            self.b = nn.Conv2d(8, 8, 3)
            self.c = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            if x.shape[-1] > 8:  # control flow on a size: traced with torch.export
                x = self.a(x)
            # torch.export keeps these regions as higher-order ops holding a subgraph
            with torch.autocast(device_type="cpu", enabled=False):
                y = self.b(x.float())
                with torch.no_grad():
                    y = torch.relu(y)
            return self.c(y)

    module, x = Regions(), torch.randn(1, 3, 16, 16)
    report = archlint.lint(module, example_inputs=(x,))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    assert any("torch.export" in note for note in report.summary.notes)
    assert not report.summary.unsupported_ops
    # the region's operators keep their own module scopes (the relu is the root module's)
    assert [r.name for r in report.layers] == ["x", "a", "b", "Relu", "c"]
    assert report.summary.macs == counter.get_total_flops() // 2 == 129_888
    assert report.summary.params == sum(p.numel() for p in module.parameters())
    # 3x3 then 3x3 then 1x1, stride 1: 5x5 from the region's conv on
    assert [report.layer(n).receptive_field for n in ("a", "b", "c")] == [(3, 3), (5, 5), (5, 5)]


def test_missing_input_shape_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="needs input shapes"):
        archlint.lint(Net())


def test_onnx_path_does_not_import_torch():
    code = ("import sys, archlint; archlint.lint(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    path = fixture_path("core_chain_legacy.onnx")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


# --- files and the command line -----------------------------------------------------------

def _small():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def _layer_numbers(report):
    return [(r.name, r.op, r.output_shape, r.macs, r.receptive_field) for r in report.layers if r.op != "input"]


def test_pt2_file_gives_the_same_layers_as_the_module(tmp_path):
    module = _small().eval()
    path = tmp_path / "small.pt2"
    torch.export.save(torch.export.export(module, (torch.randn(1, 3, 16, 16),)), str(path))
    from_file = archlint.lint(str(path))
    from_module = archlint.lint(module, input_shapes=(1, 3, 16, 16))
    assert _layer_numbers(from_file) == _layer_numbers(from_module)
    assert from_file.summary.params == from_module.summary.params


class _Payload:
    """Pickles to a call of ``Path.touch``: proof of code execution if it is ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _replace_member(archive: Path, suffix: str, data: bytes) -> None:
    with zipfile.ZipFile(archive) as z:
        items = [(info, z.read(info.filename)) for info in z.infolist()]
    hit = False
    with zipfile.ZipFile(archive, "w") as z:
        for info, content in items:
            if info.filename.endswith(suffix):
                content, hit = data, True
            z.writestr(info, content)
    assert hit, f"no member ending in {suffix}"


def test_pt2_with_a_code_running_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pt2"
    torch.export.save(torch.export.export(_small().eval(), (torch.randn(1, 3, 16, 16),)), str(path))
    marker = tmp_path / "PWNED"
    _replace_member(path, "sample_inputs/model.pt", pickle.dumps(_Payload(marker)))
    done = run_cli(str(path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"archlint: error: {path}: refused")
    assert not marker.exists()


def test_whole_model_pickle_is_refused_with_advice_unless_explicitly_allowed(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_small(), str(path))
    done = run_cli(str(path), "--input-shape", "1,3,16,16")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "runs arbitrary code" in done.stderr and "torch.export.save" in done.stderr
    assert "--unsafe-load-pickle" in done.stderr
    allowed = run_cli(str(path), "--input-shape", "1,3,16,16", "--unsafe-load-pickle", "--layers")
    assert allowed.returncode in (0, 1), allowed.stderr
    assert "4" in allowed.stdout and "linear" in allowed.stdout


def test_state_dict_file_is_refused_as_weights_only(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(_small().state_dict(), str(path))
    done = run_cli(str(path))
    assert done.returncode == 2 and "state_dict" in done.stderr and done.stderr.count("\n") == 1


def test_torchscript_file_is_read(tmp_path):
    path = tmp_path / "small.torchscript.pt"
    module = _small().eval()
    torch.jit.save(torch.jit.script(module), str(path))
    report = archlint.lint(str(path), input_shapes=(1, 3, 16, 16))
    ours = archlint.lint(module, input_shapes=(1, 3, 16, 16))
    weighted = lambda r: [(x.name, x.macs, x.receptive_field) for x in r.layers if x.op in ("conv", "linear")]  # noqa: E731
    assert weighted(report) == weighted(ours)


def test_factory_reference_on_the_command_line(tmp_path):
    (tmp_path / "mynets.py").write_text(
        "import torch.nn as nn\n"
        "def small():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))\n"
        "def with_shape():\n"
        "    return small(), (1, 3, 8, 8)\n")
    done = run_cli("mynets:small", "--input-shape", "1,3,8,8", "--format", "json", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    assert '"3"' in done.stdout and "mynets:small" in done.stdout
    assert run_cli("mynets:with_shape", cwd=tmp_path).returncode in (0, 1)
    missing = run_cli("mynets:nothing", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr == "archlint: error: mynets:nothing: module 'mynets' has no attribute 'nothing'\n"
    no_shape = run_cli("mynets:small", cwd=tmp_path)
    assert no_shape.returncode == 2 and "needs input shapes" in no_shape.stderr and no_shape.stderr.count("\n") == 1


def test_common_layers_are_traced_without_importing_torch_compile_machinery():
    """Conv, BatchNorm, activations, pooling, residual adds, flatten and linear get their
    shapes without meta kernels, whose first call imports torch._dynamo (~2 s)."""
    code = """
import sys, torch
from torch import nn
import archlint

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + x)

net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), Block(),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
report = archlint.lint(net, example_inputs=torch.randn(1, 3, 32, 32))
print(report.summary.macs, sorted(m for m in ("torch._dynamo", "torch.fx.experimental.symbolic_shapes")
                                  if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    macs, imported = result.stdout.split(maxsplit=1)
    # conv 3->8 s2 on 16x16: 16*16*8*27; block conv on 8x8: 8*8*8*72; linear 8*10
    assert int(macs) == 16 * 16 * 8 * 27 + 8 * 8 * 8 * 72 + 80
    assert imported.strip() == "[]"
