"""defined_at: findings point at the Python line that constructs the flagged layer.

Checked against a record of construction taken while each model is built
(``construction_log.ConstructionLog`` wraps ``nn.Module.__init__``, ``__setattr__`` and
``add_module`` and keeps the stacks), never against archlint's own resolution; for the
ConvBNAct model of ``helper_net.py``, against the lines found by reading that file.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from archlint import lint
from archlint.export import export_onnx as export
from archlint.graph import POOL_OPS, WEIGHTED_OPS

from conftest import import_torchvision, run_cli
from construction_log import ConstructionLog, is_construction_line, module_of

HERE = Path(__file__).resolve().parent
HELPER = HERE / "helper_net.py"


def _line_of(text: str) -> int:
    """Line number of the one line of ``helper_net.py`` containing ``text``."""
    hits = [i for i, line in enumerate(HELPER.read_text().splitlines(), 1) if text in line]
    assert len(hits) == 1, text
    return hits[0]


#: layer -> the HelperNet.__init__ line that builds it (or the ConvBNAct block holding it)
EXPECTED = {"reduce.conv": "self.reduce = ConvBNAct(", "valid.conv": "self.valid = ConvBNAct(",
            "plain": "self.plain = nn.Conv2d(", "pool": "self.pool = nn.MaxPool2d("}


def _helper_module():
    spec = importlib.util.spec_from_file_location("helper_net", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def helper_onnx(tmp_path_factory) -> Path:
    net = _helper_module()
    model, shape = net.build()
    return export(model, torch.randn(*shape), tmp_path_factory.mktemp("helper") / "helper.onnx", "dynamo")


def _helper_findings(route: str, helper_onnx: Path) -> list[dict]:
    if route == "api":
        net = _helper_module()
        model, shape = net.build()
        return [f.to_dict() for f in lint(model, input_shapes=shape).findings]
    if route == "pt2":  # a saved torch.export program: classes and traces as in a dynamo export
        model, shape = _helper_module().build()
        path = helper_onnx.with_suffix(".pt2")
        torch.export.save(torch.export.export(model.eval(), (torch.randn(*shape),)), str(path))
        return [f.to_dict() for f in lint(path).findings]
    if route == "torchscript":  # class names recorded by TorchScript, sources found on sys.path
        model, shape = _helper_module().build()
        path = helper_onnx.with_suffix(".torchscript")
        torch.jit.save(torch.jit.script(model.eval()), str(path))
        return [f.to_dict() for f in lint(path, input_shapes=shape).findings]
    if route == "factory":  # archlint builds the model itself and records its construction
        result = run_cli("helper_net:build", "--format", "json", cwd=HERE)
        assert result.returncode == 1, result.stderr
        return json.loads(result.stdout)["findings"]
    return [f.to_dict() for f in lint(helper_onnx).findings]


@pytest.mark.parametrize("route", ["api", "factory", "dynamo", "pt2", "torchscript"])
def test_helper_block_findings_name_the_model_class_lines(route, helper_onnx):
    findings = _helper_findings(route, helper_onnx)
    flagged = {f["layer"] for f in findings}
    assert set(EXPECTED) <= flagged, flagged
    helper_body = _line_of("self.conv = nn.Conv2d(")
    for f in findings:
        path, _, line = f["defined_at"].rpartition(":")
        assert Path(HERE, path).resolve() == HELPER, f
        assert int(line) != helper_body, f  # never the helper's body
        if f["layer"] in EXPECTED:
            assert int(line) == _line_of(EXPECTED[f["layer"]]), f
        assert f["defined_at"] in f["construction"]


def test_edits_rewrite_direct_constructor_calls_only(helper_onnx, tmp_path):
    findings = lint(helper_onnx).findings
    edits = {(f.code, f.layer): f.edit for f in findings}
    assert edits[("AL301", "valid.conv")] is None  # its line calls the helper: no guess
    assert edits[("AL201", "reduce.conv")] is None  # the fix is not a change of arguments
    plain, pool = edits[("AL301", "plain")], edits[("AL202", "pool")]
    assert (plain.original, plain.replacement) == ("nn.Conv2d(32, 32, 3)", "nn.Conv2d(32, 32, 3, padding=1)")
    assert (pool.original, pool.replacement) == ("nn.MaxPool2d(2)", "nn.MaxPool2d(2, ceil_mode=True)")
    # apply both edits by their regions, build the edited model: the flaws are gone
    lines = HELPER.read_text().splitlines(keepends=True)
    for edit in sorted((plain, pool), key=lambda e: (e.line, e.column), reverse=True):
        assert edit.line == edit.end_line
        text = lines[edit.line - 1]
        assert text[edit.column - 1:edit.end_column - 1] == edit.original
        lines[edit.line - 1] = text[:edit.column - 1] + edit.replacement + text[edit.end_column - 1:]
    edited = tmp_path / "helper_net_edited.py"
    edited.write_text("".join(lines))
    spec = importlib.util.spec_from_file_location("helper_net_edited", edited)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, shape = module.build()
    assert model.plain.padding == (1, 1) and model.pool.ceil_mode
    after = {(f.code, f.layer) for f in lint(model, input_shapes=shape).findings}
    assert ("AL301", "plain") not in after and ("AL202", "pool") not in after


def test_legacy_export_says_once_it_has_no_source(tmp_path):
    model, shape = _helper_module().build()
    report = lint(export(model, torch.randn(*shape), tmp_path / "legacy.onnx", "legacy"))
    assert report.findings and all(f.defined_at is None for f in report.findings)
    assert sum("legacy exporter" in n for n in report.summary.notes) == 1


def test_bare_sequential_script_is_named_not_silently_empty(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3))
    report = lint(export(model, torch.randn(1, 3, 32, 32), tmp_path / "bare.onnx", "dynamo"))
    assert report.findings and all(f.defined_at is None for f in report.findings)
    assert sum("bare nn.Sequential" in n for n in report.summary.notes) == 1


# --- real architectures -------------------------------------------------------------------------

def _torchvision(name, **kwargs):
    return lambda: getattr(import_torchvision().models, name)(**kwargs)


def _timm(name):
    def build():
        import_torchvision()
        import timm

        return timm.create_model(name)
    return build


ARCHITECTURES = {
    "resnet18": _torchvision("resnet18"), "resnet50": _torchvision("resnet50"), "vgg16": _torchvision("vgg16"),
    "googlenet": _torchvision("googlenet", aux_logits=False, init_weights=False),
    "mobilenet_v2": _torchvision("mobilenet_v2"), "alexnet": _torchvision("alexnet"),
    "timm_resnet50d": _timm("resnet50d"), "timm_seresnet50": _timm("seresnet50"), "timm_vgg11": _timm("vgg11"),
    "timm_tresnet_m": _timm("tresnet_m"),
}
SHAPE = (1, 3, 224, 224)


@pytest.fixture(scope="session")
def built(zoo):
    """name -> (model, construction lines by module path, dynamo export), each made once."""
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            with ConstructionLog() as log:
                model = ARCHITECTURES[name]().eval()
            path = zoo.folder / f"{name}_dynamo.onnx"
            if not path.exists():
                export(model, torch.randn(*SHAPE), path, "dynamo")
            cache[name] = (model, log.lines(model), path)
        return cache[name]

    return get


@pytest.mark.parametrize("route", ["api", "dynamo"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_real_architecture_findings_carry_their_construction_line(built, name, route):
    model, lines, path = built(name)
    report = lint(model, input_shapes=SHAPE) if route == "api" else lint(path)
    carried = [f for f in report.findings if f.defined_at]
    assert len(carried) >= 0.95 * len(report.findings), [f.layer for f in report.findings if not f.defined_at]
    wrong = [(f.layer, f.defined_at) for f in carried if not is_construction_line(f.defined_at, f.layer, lines)]
    assert wrong == []
    # every conv, dense and pooling layer too, not only the flagged ones
    graph_layers = [row for row in report.layers if row.op in {op.value for op in WEIGHTED_OPS | POOL_OPS}]
    known = [row for row in graph_layers if module_of(row.name, lines) is not None]
    assert len(known) >= 0.95 * len(graph_layers)
    right = [row for row in known if row.defined_at and is_construction_line(row.defined_at, row.name, lines)]
    assert len(right) >= 0.95 * len(known), [(r.name, r.defined_at) for r in known if r not in right][:5]


def test_files_named_by_a_hostile_export_are_read_only_when_regular_python_files(helper_onnx, tmp_path):
    import onnx

    fifo = tmp_path / "blocking.py"
    os.mkfifo(fifo)  # opening it for reading would hang
    model = onnx.load(str(helper_onnx), load_external_data=False)
    for node in model.graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.stack_trace":
                prop.value = f'File "/dev/zero", line 1, in forward\nFile "{fifo}", line 2, in x\n' + prop.value
            elif prop.key == "pkg.torch.onnx.class_hierarchy":
                prop.value = prop.value.replace("'helper_net.HelperNet'", f"'{fifo.stem}.HelperNet'")
    path = tmp_path / "hostile.onnx"
    onnx.save(model, str(path))
    (tmp_path / "helper.onnx.data").write_bytes(Path(f"{helper_onnx}.data").read_bytes())
    findings = lint(path).findings
    assert {f.layer: f.defined_at.line for f in findings if f.layer in EXPECTED} == \
        {layer: _line_of(text) for layer, text in EXPECTED.items()}


def test_suggested_edits_show_in_the_review_formats(helper_onnx):
    from archlint.reports.github import render_github
    from archlint.reports.html import render_html
    from archlint.reports.markdown import render_markdown

    report = lint(helper_onnx)
    github = render_github([report]).replace("%0A", "\n")
    assert "Suggested edit: nn.Conv2d(32, 32, 3) -> nn.Conv2d(32, 32, 3, padding=1)" in github
    assert "*Suggested edit:* `nn.MaxPool2d(2, ceil_mode=True)`" in render_markdown([report])
    assert '<code class="edit">nn.Conv2d(32, 32, 3, padding=1)</code>' in render_html([report])
