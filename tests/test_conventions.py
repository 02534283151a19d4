"""Counting conventions: which archlint setting reproduces which peer tool, measured.

The README's conventions table is checked against live runs of torchinfo, fvcore, ptflops and
thop on the torchvision nn.Modules (1x3x224x224), and against archlint on the ONNX exports.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from pathlib import Path

import pytest

from archlint.analyses.macs import Convention
from archlint.api import lint
from conftest import import_torchvision

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet50", "mobilenet_v2")


def _peers(module, x) -> dict[str, int]:
    """Totals of the peer tools on ``module`` (each imported only here)."""
    import torchinfo
    from fvcore import nn as fvcore_nn
    import ptflops
    import thop
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    result = {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        result["torchinfo"] = torchinfo.summary(module, input_data=x, verbose=0).total_mult_adds
        analysis = fvcore_nn.FlopCountAnalysis(module, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        result["fvcore"] = analysis.total()
        for backend in ("aten", "pytorch"):
            macs, _ = ptflops.get_model_complexity_info(module, tuple(x.shape[1:]), as_strings=False,
                                                        print_per_layer_stat=False, backend=backend)
            result[f"ptflops-{backend}"] = int(macs)
        ops, _ = thop.profile(module, inputs=(x,), verbose=False)
        result["thop"] = int(ops)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
        result["FlopCounterMode"] = counter.get_total_flops()
    return result


def _module_facts(module, x) -> dict[str, int]:
    """BatchNorm elements and parameters, classifier bias, adaptive-pool work, by forward hooks."""
    import torch

    facts = {"bn_elements": 0, "bn_params": 0, "linear_bias": 0, "adaptive_pool_thop": 0,
             "relu_module_elements": 0, "pool_module_inputs": 0}

    def hook(mod, args, out):
        if isinstance(mod, torch.nn.BatchNorm2d):
            facts["bn_elements"] += args[0].numel()
            facts["bn_params"] += mod.weight.numel() + mod.bias.numel()
        elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
            facts["linear_bias"] += out.numel()
        elif isinstance(mod, torch.nn.ReLU):
            facts["relu_module_elements"] += out.numel()
        if isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d)):
            facts["pool_module_inputs"] += args[0].numel()
        if isinstance(mod, torch.nn.AdaptiveAvgPool2d):  # thop: (window + 1) per output
            window = math.prod(a // b for a, b in zip(args[0].shape[2:], out.shape[2:]))
            facts["adaptive_pool_thop"] += (window + 1) * out.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return facts


@pytest.fixture(scope="module")
def measured(zoo):
    tv = import_torchvision()
    import torch

    data = {}
    for name in MODELS:
        torch.manual_seed(0)
        module = getattr(tv.models, name)().eval()
        x = torch.randn(1, 3, 224, 224)
        legacy = lint(str(zoo[name].paths["legacy"]), select=["AL1"])
        dynamo = lint(str(zoo[name].paths["dynamo"]), select=["AL1"])
        frontend = lint(module, input_shapes=(1, 3, 224, 224), select=["AL1"])
        other = legacy.summary.other_ops
        data[name] = {
            "peers": _peers(module, x), "facts": _module_facts(module, x),
            "macs": dynamo.summary.macs, "published": zoo[name].published_gflops,
            "other": other, "dynamo_other": dynamo.summary.other_ops, "frontend_other": frontend.summary.other_ops,
            "count": {spec: legacy.with_count(Convention.parse(*spec.split(":"))).summary.count["total"]
                      for spec in ("macs:", "flops:", "macs:bias", "macs:all")},
            # archlint counts a global pool as one op per input element
            "global_pool_inputs": sum(r.other_ops for r in legacy.layers if r.op == "global_pool"),
            "max_pool_inputs": sum(math.prod(_input_shape(legacy, r.name)) for r in legacy.layers
                                   if r.op == "max_pool"),
        }
    return data


def _input_shape(report, name):
    """Output shape of the layer before ``name`` in the table (the pool's producer in these models)."""
    rows = list(report.layers)
    index = [r.name for r in rows].index(name)
    return rows[index - 1].output_shape


def _readme_rows() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Counting conventions compared"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| tool") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def _number(cell: str) -> int:
    return int(re.sub(r"[^0-9]", "", cell.split("(")[0]))


#: README row label -> key of the measured value
ROWS = {"torchvision (published \"GFLOPS\")": None, "`FlopCounterMode` (torch)": "FlopCounterMode",
        "ptflops, aten backend": "ptflops-aten", "torchinfo (\"mult-adds\")": "torchinfo", "fvcore": "fvcore",
        "ptflops, pytorch backend": "ptflops-pytorch", "thop": "thop"}


def test_readme_table_holds_the_measured_totals(measured):
    rows = _readme_rows()
    assert set(ROWS) | {"archlint default", "archlint `--count flops`", "archlint `--count-include bias`",
                        "archlint `--count-include all`"} == set(rows)
    for label, key in ROWS.items():
        for column, name in ((1, "resnet50"), (2, "mobilenet_v2")):
            value = measured[name]["macs"] if key is None else measured[name]["peers"][key]
            assert _number(rows[label][column]) == value, (label, name)
    for label, spec in (("archlint default", "macs:"), ("archlint `--count flops`", "flops:"),
                        ("archlint `--count-include bias`", "macs:bias"), ("archlint `--count-include all`", "macs:all")):
        for column, name in ((1, "resnet50"), (2, "mobilenet_v2")):
            assert _number(rows[label][column]) == measured[name]["count"][spec], (label, name)


@pytest.mark.parametrize("name", MODELS)
def test_exact_reproductions(measured, name):
    m = measured[name]
    assert f"{m['macs'] / 1e9:.3f}" == m["published"]                      # torchvision's GFLOPS are MACs
    assert m["peers"]["FlopCounterMode"] == m["count"]["flops:"] == 2 * m["macs"]
    assert m["peers"]["ptflops-aten"] == m["macs"] + m["facts"]["linear_bias"]  # + the classifier bias


@pytest.mark.parametrize("name", MODELS)
def test_why_the_others_differ(measured, name):
    m, f = measured[name], measured[name]["facts"]
    # torchinfo: one op per BatchNorm parameter (not per element) and the classifier bias
    assert m["peers"]["torchinfo"] == m["macs"] + f["bn_params"] + f["linear_bias"]
    # fvcore: 2 per BatchNorm element (scale, shift) and the global pooling's input elements
    assert m["peers"]["fvcore"] == m["macs"] + 2 * f["bn_elements"] + m["global_pool_inputs"]
    # thop: 4 per BatchNorm element and (window + 1) per output of nn.AdaptiveAvgPool2d modules
    assert m["peers"]["thop"] == m["macs"] + 4 * f["bn_elements"] + f["adaptive_pool_thop"]
    # ptflops (pytorch backend): + classifier bias, 2 per BN element, 1 per activation output, pooling
    # inputs; nn.ReLU, nn.MaxPool2d and nn.AdaptiveAvgPool2d are counted twice (module hook and
    # patched functional); ReLU6 (F.hardtanh) and a functional adaptive pool once
    pool_inputs = m["max_pool_inputs"] + m["global_pool_inputs"]
    assert m["max_pool_inputs"] == (64 * 112 * 112 if name == "resnet50" else 0)  # into the stem pool
    assert m["peers"]["ptflops-pytorch"] == (m["macs"] + f["linear_bias"] + 2 * f["bn_elements"]
                                            + m["other"]["activation"] + pool_inputs
                                            + f["relu_module_elements"] + f["pool_module_inputs"])


@pytest.mark.parametrize("name", MODELS)
def test_folded_batchnorm_leaves_only_its_shift(measured, name):
    """BN is folded into the conv on export and in the PyTorch frontend: its scale costs nothing,
    its shift becomes the conv's bias, one add per element -- kept by the legacy exporter and the
    PyTorch frontend, dropped by dynamo when it is zero (untrained BN: beta = mean = 0)."""
    m, f = measured[name], measured[name]["facts"]
    assert "normalization" not in m["other"] and "normalization" not in m["frontend_other"]
    assert m["other"]["bias"] == m["frontend_other"]["bias"] == f["bn_elements"] + f["linear_bias"]
    assert m["count"]["macs:bias"] == m["macs"] + f["bn_elements"] + f["linear_bias"]
    assert m["dynamo_other"].get("bias", 0) < m["other"]["bias"]


def test_cli_count_flags_on_budget_net():
    """budget_net (1x3x32x32): 1,622,336 MACs; bias adds 16x32x32 + 32x16x16 + 10 = 24,586."""
    from conftest import fixture_path, run_cli
    import json

    r = run_cli(fixture_path("budget_net_legacy.onnx"), "--isolated", "--exit-zero", "--format", "json",
                "--count", "flops", "--count-include", "bias")
    count = json.loads(r.stdout)["summary"]["count"]
    assert count["total"] == 2 * 1622336 + 16 * 32 * 32 + 32 * 16 * 16 + 10
    assert count["unit"] == "flops" and count["include"] == ["bias"]
    assert count["convention"].startswith("FLOPs = 2 x multiply-accumulates") and "bias adds" in count["convention"]
    assert json.loads(r.stdout)["summary"]["macs"] == 1622336  # the headline is unchanged
    text = run_cli(fixture_path("budget_net_legacy.onnx"), "--isolated", "--exit-zero", "--count", "flops").stdout
    assert "note: count: 3,244,672 (FLOPs = 2 x" in text
    bad = run_cli(fixture_path("budget_net_legacy.onnx"), "--isolated", "--count-include", "bias,softmax")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "softmax" in bad.stderr
