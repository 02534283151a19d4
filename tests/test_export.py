"""archlint.export: the quiet ONNX export that tests, fixtures and benchmarks share."""

from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
import torch

from archlint.export import EXPORTERS, export_onnx


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).train()


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_export_is_silent_and_names_the_input(exporter, tmp_path, capfd):
    net = _net()
    path = export_onnx(net, torch.randn(1, 3, 8, 8), tmp_path / "net.onnx", exporter)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert not net.training  # exported in eval mode
    model = onnx.load(str(path), load_external_data=False)
    assert [i.name for i in model.graph.input] == ["x"]
    weights = {t.name: t for t in model.graph.initializer}
    assert weights["0.weight"].data_location == (onnx.TensorProto.EXTERNAL if exporter == "dynamo"
                                                 else onnx.TensorProto.DEFAULT)
    assert (tmp_path / "net.onnx.data").exists() == (exporter == "dynamo")


def test_legacy_export_keeps_its_own_input_name_on_request(tmp_path):
    path = export_onnx(_net(), (torch.randn(1, 3, 8, 8),), tmp_path / "net.onnx", "legacy", input_names=None)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["input.1"]


@pytest.mark.parametrize("exporter,opset", [("legacy", None), ("legacy", 13), ("dynamo", 18)])
def test_export_writes_the_opset_asked_for(exporter, opset, tmp_path):
    path = export_onnx(_net(), torch.randn(1, 3, 8, 8), tmp_path / "net.onnx", exporter, opset=opset)
    model = onnx.load(str(path), load_external_data=False)
    assert {o.domain: o.version for o in model.opset_import}[""] == (opset or 17)


def test_dynamo_export_replaces_an_older_weights_file(tmp_path):
    (tmp_path / "net.onnx.data").write_bytes(b"\0" * 100_000)
    path = export_onnx(_net(), torch.randn(1, 3, 8, 8), tmp_path / "net.onnx")
    assert (tmp_path / "net.onnx.data").stat().st_size < 100_000
    onnx.load(str(path))  # the external weights resolve


def test_unknown_exporter_is_refused(tmp_path):
    with pytest.raises(ValueError, match="legacy, dynamo"):
        export_onnx(_net(), torch.randn(1, 3, 8, 8), tmp_path / "net.onnx", "script")


def test_importing_the_helper_does_not_import_torch():
    code = "import sys, archlint.export; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
