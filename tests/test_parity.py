"""The PyTorch path and the ONNX path (both exporters) agree layer by layer.

For torchvision architectures and for every fixture with a torch spec in
``fixtures/specs/*.py``: the same conv/linear layers by module path with identical MACs,
shapes and receptive fields; the same multiset of conv/linear/pool layers; identical
findings (code and layer); and on the PyTorch path parameters equal ``sum(p.numel())``.
Exports are cached once per session (``zoo`` fixture, or ``ARCHLINT_TEST_CACHE``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

import archlint
from archlint.export import EXPORTERS, export_onnx

from conftest import ROOT, ZOO, fixture_path, import_torchvision, load_build_script

WEIGHTED = ("conv", "conv_transpose", "linear")
WINDOWED = WEIGHTED + ("max_pool", "avg_pool", "global_pool")
ARCHS = {"resnet18": ({}, 224), **{name: (kwargs, size) for name, (kwargs, size, _) in ZOO.items()
                                      if name != "vgg16"}}


SPECS = load_build_script().all_specs()
#: fixtures whose builder returns (torch module, input shape); hand-built ONNX ones are skipped
TORCH_FIXTURES = [name for name in SPECS if not (ROOT / "fixtures" / "models" / f"{name}.onnx").exists()]


def _row_key(row):
    return (row.op, row.output_shape, row.kernel, row.stride, row.macs, row.receptive_field,
            row.effective_stride, row.effective_padding)


def assert_parity(module, shape, onnx_path: Path) -> None:
    ours = archlint.lint(module, input_shapes=shape)
    theirs = archlint.lint(onnx_path)
    a = {r.name: r for r in ours.layers if r.op in WEIGHTED}
    b = {r.name: r for r in theirs.layers if r.op in WEIGHTED}
    assert set(a) == set(b)
    differ = {n: (_row_key(a[n]), _row_key(b[n])) for n in a if _row_key(a[n]) != _row_key(b[n])}
    assert not differ
    # pooling layers too: the same layers with the same numbers (names where both name them alike)
    ours_all = Counter(_row_key(r) for r in ours.layers if r.op in WINDOWED)
    theirs_all = Counter(_row_key(r) for r in theirs.layers if r.op in WINDOWED)
    assert ours_all == theirs_all
    pools_a = {r.name: _row_key(r) for r in ours.layers if r.op in WINDOWED}
    pools_b = {r.name: _row_key(r) for r in theirs.layers if r.op in WINDOWED}
    assert {n: k for n, k in pools_a.items() if n in pools_b} == {n: k for n, k in pools_b.items() if n in pools_a}
    assert ours.summary.macs == theirs.summary.macs
    assert sorted((f.code, f.layer) for f in ours.findings) == sorted((f.code, f.layer) for f in theirs.findings)
    assert ours.summary.params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", TORCH_FIXTURES)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fixture_gives_the_same_layers_and_findings_as_its_onnx_exports(name, exporter):
    path = fixture_path(f"{name}_{exporter}.onnx")
    torch.manual_seed(0)
    module, shape = SPECS[name][0]()
    assert_parity(module.eval(), shape, path)


@pytest.fixture(scope="session")
def arch_exports(zoo):
    """name -> (module, input shape, {exporter: path}); torchvision exports made once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            tv = import_torchvision()
            kwargs, size = ARCHS[name]
            torch.manual_seed(0)
            module = getattr(tv.models, name)(**kwargs).eval()
            if name in ZOO:
                paths = zoo[name].paths
            else:
                x = torch.randn(1, 3, size, size)
                paths = {}
                for exporter in EXPORTERS:
                    path = zoo.folder / f"{name}_{exporter}.onnx"
                    if not path.exists():
                        export_onnx(module, x, path, exporter)
                    paths[exporter] = path
            cache[name] = (module, (1, 3, size, size), paths)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_torchvision_architecture_matches_its_onnx_exports(arch_exports, name, exporter):
    module, shape, paths = arch_exports(name)
    assert_parity(module, shape, paths[exporter])
