"""The command line and ``archlint.lint``: exit codes, JSON document, --output, bad input."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
from onnx import helper

import archlint
from archlint.errors import ArchlintError

from conftest import fixture_path, make_model, run_cli, save, weight

PLUGIN = textwrap.dedent('''
    from archlint.rule import Rule


    class AlwaysFires(Rule):
        """Flags the first conv of every model (test plugin).

        ## What it flags
        Anything.
        ## Why it matters
        Tests need a finding.
        ## Example
        Any model.
        ## Fix
        None.
        """

        code, name = "ZZ901", "always-fires"

        def check(self, graph, ctx):
            first = next(layer for layer in graph.layers() if layer.op.value == "conv")
            yield ctx.finding(first.name, "test finding")


    class NeverFires(Rule):
        """Never flags anything (test plugin).

        ## What it flags
        Nothing.
        ## Why it matters
        Tests need a clean run.
        ## Example
        Any model.
        ## Fix
        None.
        """

        code, name = "ZZ902", "never-fires"

        def check(self, graph, ctx):
            return iter(())


    def get_rules():
        return [AlwaysFires, NeverFires]
''')


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "zz_rules.py").write_text(PLUGIN)
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A copy of a small fixture in a folder of its own."""
    folder = tmp_path_factory.mktemp("model")
    return Path(shutil.copy(fixture_path("core_chain_legacy.onnx"), folder / "chain.onnx"))


# --- exit codes, JSON, --output -------------------------------------------------------------

def test_exit_codes_are_0_clean_1_findings_2_errors(model, plugin_dir, tmp_path):
    common = ("--isolated", "--rules-path", plugin_dir)
    assert run_cli(model, *common, "--select", "ZZ902").returncode == 0
    fired = run_cli(model, *common, "--select", "ZZ901")
    assert fired.returncode == 1 and "ZZ901" in fired.stdout
    assert run_cli(model, *common, "--select", "ZZ901", "--exit-zero").returncode == 0
    assert run_cli(model, *common, "--select", "ZZ901", "--fail-on", "error").returncode == 0
    missing = run_cli(tmp_path / "nope.onnx", *common)
    assert missing.returncode == 2 and missing.stderr.startswith("archlint: error: ")


def test_console_script_flushes_output_and_runs_exit_handlers_before_it_ends_the_process(model):
    import subprocess

    code = ("import atexit, sys\natexit.register(lambda: print('handler ran', file=sys.stderr))\n"
            "from archlint.cli import run\nrun([sys.argv[1], '--isolated', '--format', 'json', '--fail-on', 'info'])\n"
            "print('not reached')")
    result = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1  # the example model has findings
    assert json.loads(result.stdout)["findings"] and "not reached" not in result.stdout
    assert result.stderr.strip() == "handler ran"


def test_json_document_has_the_documented_keys(model, plugin_dir):
    result = run_cli(model, "--isolated", "--rules-path", plugin_dir, "--select", "ZZ901", "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    summary = doc["summary"]
    assert isinstance(summary["macs"], int) and isinstance(summary["params"], int)
    assert set(summary["receptive_field"]) >= {"size", "stride", "padding", "layer"}
    keys = {"name", "op", "output_shape", "macs", "params", "receptive_field", "effective_stride",
            "effective_padding", "source"}
    assert doc["layers"] and all(keys <= set(row) for row in doc["layers"])
    assert [f["code"] for f in doc["findings"]] == ["ZZ901"]
    assert doc["findings"][0]["layer"] == "conv1"
    # hand count for core_chain: conv1 3->4 3x3 on 32x32, conv2 4->4 3x3 on 16x16, conv3 same on
    # 8x8, conv4 4->8 3x1 on 4x8, fc 8->5
    macs = 32 * 32 * 4 * 3 * 9 + 16 * 16 * 4 * 4 * 9 + 8 * 8 * 4 * 4 * 9 + 4 * 8 * 8 * 4 * 3 + 8 * 5
    assert summary["macs"] == macs
    params = (4 * 3 * 9 + 4) + (4 * 4 * 9 + 4) * 2 + (8 * 4 * 3 + 8) + (8 * 5 + 5)
    assert summary["params"] == params
    assert summary["receptive_field"]["size"] == [31, 23] and summary["receptive_field"]["layer"]


def test_output_is_written_atomically(model, plugin_dir, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old")
    args = (model, "--isolated", "--rules-path", plugin_dir, "--select", "ZZ902", "--format", "json")
    result = run_cli(*args, "--output", out)
    assert result.returncode == 0 and result.stdout == ""
    assert out.read_text() == run_cli(*args).stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp file left over
    failed = run_cli(tmp_path / "missing.onnx", "--isolated", "--output", out)
    assert failed.returncode == 2 and json.loads(out.read_text())  # old report untouched


def test_api_report_has_the_same_numbers_as_the_cli_json(model):
    doc = json.loads(run_cli(model, "--isolated", "--format", "json").stdout)
    report = archlint.lint(model)
    assert report.to_dict()["summary"]["macs"] == doc["summary"]["macs"] == report.summary.macs
    assert report.summary.params == doc["summary"]["params"]
    assert report.to_dict()["summary"]["receptive_field"] == doc["summary"]["receptive_field"]
    assert report.to_dict()["layers"] == doc["layers"]


def test_onnx_path_never_imports_torch(model):
    code = ("import sys\nfrom archlint.cli import main\ntry:\n    main([sys.argv[1], '--isolated', "
            "'--format', 'json'])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('torch' in sys.modules, code, file=sys.stderr)")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True)
    assert result.stderr.strip().splitlines()[-1] in ("False 0", "False 1")


# --- bad input ----------------------------------------------------------------------------

def _flip(data: bytes) -> bytes:
    # the first bytes hold ir_version, producer and the graph header; inverting them breaks the framing
    return bytes(b ^ 0xFF for b in data[:24]) + data[24:]


def _external(tmp: Path, location: str | None = None, truncate: bool = False, drop_data: bool = False) -> Path:
    """A dynamo export whose external data has been tampered with."""
    src = fixture_path("core_chain_dynamo.onnx")
    folder = tmp / "model"
    folder.mkdir()
    path = Path(shutil.copy(src, folder / "m.onnx"))
    data = Path(shutil.copy(f"{src}.data", folder / "core_chain_dynamo.onnx.data"))
    if drop_data:
        data.unlink()
    if truncate:
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    if location is not None:
        proto = onnx.load(str(path), load_external_data=False)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(proto, str(path))
    return path


def _symlinked(tmp: Path) -> Path:
    outside = tmp / "outside"
    outside.mkdir()
    shutil.copy(f"{fixture_path('core_chain_dynamo.onnx')}.data", outside / "real.data")
    path = _external(tmp, location="w.data")
    os.symlink(outside / "real.data", path.parent / "w.data")
    return path


def _conv_model(x_channels=3, w_shape=(4, 3, 3, 3), **attrs):
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], **attrs)
    return make_model([conv], {"x": [1, x_channels, 8, 8]}, {"y": None}, [weight("w", w_shape)])


BAD = {
    "text_file": lambda tmp: _write(tmp / "m.onnx", b"this is not a model\nat all\n"),
    "truncated_file": lambda tmp: _write(tmp / "m.onnx", fixture_path("core_chain_legacy.onnx").read_bytes()[:1500]),
    "empty_file": lambda tmp: _write(tmp / "m.onnx", b""),
    "bit_flipped": lambda tmp: _write(tmp / "m.onnx", _flip(fixture_path("core_chain_legacy.onnx").read_bytes())),
    "missing_external_data": lambda tmp: _external(tmp, drop_data=True),
    "external_data_parent_dir": lambda tmp: _external(tmp, location="../x.data"),
    "external_data_absolute": lambda tmp: _external(tmp, location=str(fixture_path("core_chain_dynamo.onnx")) + ".data"),
    "external_data_symlink_outside": _symlinked,
    "truncated_external_data": lambda tmp: _external(tmp, truncate=True),
    "no_nodes": lambda tmp: save(make_model([], {"x": [1, 3, 8, 8]}, {"x": [1, 3, 8, 8]}), tmp / "m.onnx"),
    "dynamic_shape": lambda tmp: save(make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])], {"x": [1, 3, "H", "W"]},
        {"y": None}, [weight("w", (4, 3, 3, 3))]), tmp / "m.onnx"),
    "channel_mismatch": lambda tmp: save(_conv_model(x_channels=3, w_shape=(4, 5, 3, 3)), tmp / "m.onnx"),
    "group_zero": lambda tmp: save(_conv_model(group=0), tmp / "m.onnx"),
}


#: what the one error line must say, per case (lower-cased substring)
REASON = {
    "text_file": "not", "truncated_file": "not a valid onnx model", "empty_file": "empty",
    "bit_flipped": "not a valid onnx model", "missing_external_data": "missing external data",
    "external_data_parent_dir": "outside the model's folder", "external_data_absolute": "outside the model's folder",
    "external_data_symlink_outside": "outside the model's folder", "truncated_external_data": "too short",
    "no_nodes": "no graph nodes", "dynamic_shape": "--input-shape", "channel_mismatch": "channels",
    "group_zero": "group",
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_one_error_line_and_exit_2(case, tmp_path):
    path = BAD[case](tmp_path)
    out = tmp_path / "out.json"
    result = run_cli(path, "--isolated", "--format", "json", "--output", out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("archlint: error: ") and str(path) in lines[0]
    assert REASON[case] in lines[0].lower()
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()
    with pytest.raises(ArchlintError) as info:
        archlint.lint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
