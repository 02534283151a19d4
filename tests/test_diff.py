"""archlint diff: layer matching across exporters, changes named per layer, findings new/fixed, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from archlint.api import lint_graph
from archlint.diff import diff_graphs, diff_models
from archlint.export import export_onnx
from archlint.frontends import load_graph
from conftest import RESNET_DOWNSAMPLING_BLOCKS, count_calls, fixture_path, load_synthetic, run_cli


# --- re-export: the same module through the other exporter is no change ------------------------

@pytest.mark.parametrize("name", ["plain_convs", "budget_net", "core_branches", "plain_convs_separable"])
def test_fixture_reexported_is_identical(name):
    d = diff_models(fixture_path(f"{name}_legacy.onnx"), fixture_path(f"{name}_dynamo.onnx"))
    assert (d.added, d.removed, d.changed, d.new_findings, d.fixed_findings) == ((), (), (), (), ())
    assert d.identical
    assert d.totals["macs"]["delta"] == 0 and d.totals["params"]["delta"] == 0


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "densenet121", "inception_v3"])
def test_torchvision_reexported_is_identical(zoo, name):
    model = zoo[name]
    d = diff_models(model.paths["legacy"], model.paths["dynamo"])
    assert d.identical, (d.added, d.removed, [(c.head, c.fields) for c in d.changed])
    assert len(d.unchanged_findings) == len(d.base.findings) == len(d.head.findings)
    # the exporter-named layers were matched, not shown as removed + added
    renamed = {b: h for h, b in d.matched.items() if h != b}
    assert renamed.get("Flatten") == "Reshape"
    if name in ("mobilenet_v2", "densenet121"):
        assert renamed.get("GlobalAveragePool") == "ReduceMean"
    if name == "inception_v3":  # legacy merges the nested torch.cat calls of InceptionE
        assert renamed["Mixed_7c/Concat"] == "Mixed_7c/Concat_2"
    # legacy keeps the zero biases of folded BatchNorms, dynamo drops them: bias-only noise
    assert d.totals["bias_params"]["delta"] < 0
    assert all(b["only"] for b in d.bias_only)


def test_default_input_names_are_matched(tmp_path, specs):
    """Legacy export without input_names names the input ``input.1``; dynamo calls it ``x``."""
    import torch

    spec = __import__("importlib.util").util.spec_from_file_location(
        "diff_specs", Path(__file__).resolve().parent.parent / "fixtures" / "specs" / "diff.py")
    module = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net, shape = module.budget_net()
    net.eval()
    legacy = tmp_path / "legacy.onnx"
    export_onnx(net, torch.randn(*shape), legacy, "legacy", input_names=None)
    d = diff_models(legacy, fixture_path("budget_net_dynamo.onnx"))
    assert list(d.base.summary.inputs) != list(d.head.summary.inputs)  # really different names
    assert d.identical


# --- a conv replaced by the depthwise-separable pair AL401 suggests --------------------------

@pytest.mark.parametrize("base_variant,head_variant", [("legacy", "legacy"), ("dynamo", "dynamo"),
                                                       ("legacy", "dynamo")])
def test_depthwise_separable_replacement(base_variant, head_variant):
    d = diff_models(fixture_path(f"plain_convs_{base_variant}.onnx"),
                    fixture_path(f"plain_convs_separable_{head_variant}.onnx"))
    assert [r["layer"] for r in d.removed] == ["conv2"]
    assert [a["layer"] for a in d.added] == ["conv2.0", "conv2.1"]
    assert d.replaced == ({"before": ["conv2"], "after": ["conv2.0", "conv2.1"],
                           # 16x16 outputs: 256*9*24*32 before; 256*9*24 + 256*24*32 after
                           "macs_before": 1769472, "macs_after": 55296 + 196608,
                           "params_before": 9 * 24 * 32, "params_after": 9 * 24 + 24 * 32},)
    assert d.changed == ()
    assert d.new_findings == ()
    assert [(f.code, f.layer) for f in d.fixed_findings] == [("AL401", "conv2")]
    saved = d.fixed_findings[0].data["macs_saved"]
    assert saved == 1517568
    assert d.totals["macs"]["delta"] == -saved
    assert d.totals["receptive_field"]["delta"] is None and d.totals["output_shape"]["delta"] is None


# --- ResNet-50 with the stride in the first 1x1 of each downsampling block (ResNet v1) -----------

def _conv_outputs(module):
    """Module path -> (output shape, MACs) of every conv, measured with forward hooks."""
    import torch

    found = {}

    def hook(name):
        def record(mod, args, out):
            macs = out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
            found[name] = (tuple(out.shape), macs)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        module(torch.randn(1, 3, 224, 224))
    for h in handles:
        h.remove()
    return found


def test_resnet50_stride_moved_to_first_1x1(resnet_stride_in_1x1):
    base_path, head_path, base_module, head_module = resnet_stride_in_1x1
    d = diff_models(base_path, head_path)
    before, after = _conv_outputs(base_module), _conv_outputs(head_module)
    changed = {c.head: c for c in d.changed}
    assert d.added == () and d.removed == ()
    for name in RESNET_DOWNSAMPLING_BLOCKS:
        c1, c2 = f"{name}.0.conv1", f"{name}.0.conv2"
        (shape0, macs0), (shape1, macs1) = before[c1], after[c1]
        # the 1x1 conv now strides: output halves per side, MACs quarter
        assert shape1[2] * 2 == shape0[2] and shape1[3] * 2 == shape0[3] and macs1 * 4 == macs0
        diffs = {f: (a, b) for f, a, b in changed[c1].differences}
        assert set(diffs) == {"output_shape", "stride", "macs", "receptive_field"}
        assert diffs["stride"] == ((1, 1), (2, 2)) and diffs["macs"] == (macs0, macs1)
        assert diffs["output_shape"] == (shape0, shape1)
        # its ReLU (BatchNorm is folded into the conv) halves too
        relu = {f: (a, b) for f, a, b in changed[f"{name}.0.relu"].differences}
        assert set(relu) == {"output_shape", "receptive_field"} and relu["output_shape"] == (shape0, shape1)
        # the 3x3 conv no longer strides: same output and MACs, larger field
        assert before[c2] == after[c2]
        diffs2 = {f: (a, b) for f, a, b in changed[c2].differences}
        assert set(diffs2) == {"stride", "receptive_field"} and diffs2["stride"] == ((2, 2), (1, 1))
    # every layer from layer2.0.conv1 on changes its receptive field, except the parallel
    # projection layer2.0.downsample.0, which still reads layer1's output
    order = [r.name for r in d.base.layers]
    base_names = {c.base for c in d.changed}
    expected = set(order[order.index("layer2.0.conv1"):]) - {"layer2.0.downsample.0"}
    assert base_names == expected
    assert all("receptive_field" in c.fields for c in d.changed)
    only_field = [c.head for c in d.changed if c.fields == ("receptive_field",)]
    assert len(only_field) == len(d.changed) - 3 * 3
    macs_delta = sum(after[n][1] - before[n][1] for n in before)
    assert macs_delta == sum(after[f"{n}.0.conv1"][1] - before[f"{n}.0.conv1"][1] for n in RESNET_DOWNSAMPLING_BLOCKS) < 0
    assert d.totals["macs"]["delta"] == macs_delta
    assert d.totals["params"]["delta"] == 0 and d.totals["output_shape"]["delta"] is None
    assert d.totals["receptive_field"]["delta"] is not None
    # new: the strided 1x1 convs read one input pixel in four (AL201); nothing fixed
    assert sorted((f.code, f.layer) for f in d.new_findings) == [("AL201", f"{n}.0.conv1") for n in RESNET_DOWNSAMPLING_BLOCKS]
    assert d.fixed_findings == ()


# --- wide fan-out: identical parallel branches, matched by structure ----------------------------

def test_identical_parallel_branches_match_in_linear_work(tmp_path):
    """Op-named convs that all read the input share their producers: every one is a candidate for
    every other, and filtering that list per layer made the diff quadratic in the branch count."""
    conv_fan_out = load_synthetic().conv_fan_out
    calls = {}
    for branches in (100, 200, 400):
        graph = load_graph(conv_fan_out(tmp_path / f"fan{branches}.onnx", branches))
        report = lint_graph(graph)
        d, calls[branches] = count_calls(diff_graphs, graph, report, graph, report)
        assert d.identical and len(d.matched) == branches + 2  # input, branches, concat
        assert all(h == b for h, b in d.matched.items())  # each branch with itself, in order
    # linear: doubling the branches doubles the work (quadratic matching made it 3.7x, then 3.8x)
    assert calls[400] / calls[200] < 2.2 and calls[200] / calls[100] < 2.2, calls


# --- command line ------------------------------------------------------------------------------

def test_cli_diff_formats_and_exit_codes(tmp_path):
    base, head = fixture_path("plain_convs_separable_legacy.onnx"), fixture_path("plain_convs_dynamo.onnx")
    # HEAD brings back the standard conv: one new AL401 (info) finding
    r = run_cli("diff", base, head, "--isolated")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("new   ") and "AL401" in r.stdout.splitlines()[0]
    r = run_cli("diff", base, head, "--isolated", "--fail-on", "info")
    assert r.returncode == 1
    r = run_cli("diff", base, head, "--isolated", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["kind"] == "diff" and doc["schema_version"] == 1
    assert [f["layer"] for f in doc["findings"]["new"]] == ["conv2"]
    assert doc["totals"]["macs"]["delta"] == doc["findings"]["new"][0]["data"]["macs_saved"]
    assert doc["layers"]["replaced"][0]["before"] == ["conv2.0", "conv2.1"]
    assert doc["layers"]["replaced"][0]["after"] == ["conv2"]
    r = run_cli("diff", base, head, "--isolated", "--format", "markdown")
    md = r.stdout
    assert md.index("### New findings") < md.index("| | base | head | delta |") < md.index("Layer changes")
    assert "| MACs |" in md and "+1.518 M" in md and len(md) < 65536


def test_cli_diff_identical_and_bad_input(tmp_path):
    a, b = fixture_path("budget_net_legacy.onnx"), fixture_path("budget_net_dynamo.onnx")
    r = run_cli("diff", a, b, "--isolated", "--fail-on", "info")
    assert r.returncode == 0 and "identical" in r.stdout
    r = run_cli("diff", a, tmp_path / "missing.onnx", "--isolated")
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("archlint: error:")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    r = run_cli("diff", bad, b, "--isolated")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_single_model_command_unchanged():
    model = fixture_path("budget_net_dynamo.onnx")
    plain = run_cli(model, "--isolated", "--format", "json")
    check = run_cli("check", model, "--isolated", "--format", "json")
    assert plain.returncode == check.returncode == 1 and plain.stderr == ""  # AL503: 5x5 field on 32x32
    assert plain.stdout == check.stdout
    doc = json.loads(plain.stdout)
    assert doc["summary"]["count"]["unit"] == "macs" and doc["summary"]["baseline"] is None
    assert not [f for f in doc["findings"] if f["code"].startswith("AL6")]  # budgets off by default
