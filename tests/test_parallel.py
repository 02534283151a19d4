"""Many models at once: folders, ``-j N`` worker processes, input order, one error line per
broken model (exit 2, no ``--output``), and a progress bar only on a terminal outside CI."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
CMD = [sys.executable, "-c", "from archlint.cli import run; run()"]


def run(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Legacy fixtures (no external data) in a folder tree, one of them nested."""
    root = tmp_path_factory.mktemp("models")
    names = ["example_cnn_legacy", "gap_head_8x8_legacy", "core_asym_pad", "same_conv_chain_5_legacy",
             "pool_stride_gap_legacy", "mixed_valid_net_legacy"]
    (root / "sub").mkdir()
    for i, name in enumerate(names):
        shutil.copy(MODELS / f"{name}.onnx", (root / "sub" if i % 2 else root) / f"{name}.onnx")
    (root / "notes.txt").write_text("not a model")
    return root


def _expected_order(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.onnx"))


def test_folder_in_parallel_equals_sequential_in_input_order(folder):
    parallel = run(folder, "-j", "3", "--format", "json")
    sequential = run(folder, "-j", "1", "--format", "json")
    assert parallel.returncode == sequential.returncode == 1, parallel.stderr
    assert parallel.stderr == ""  # no progress bar: stderr is not a terminal
    assert parallel.stdout == sequential.stdout
    doc = json.loads(parallel.stdout)
    assert [r["model"] for r in doc["reports"]] == _expected_order(folder)
    # each report is what linting that file alone gives
    for report in doc["reports"]:
        alone = json.loads(run(report["model"], "--format", "json").stdout)
        assert report == alone


def test_files_keep_the_given_order_and_duplicates_are_dropped(folder):
    files = list(reversed(_expected_order(folder)))
    result = run(*files, files[0], "-j", "2", "--format", "json")
    assert [r["model"] for r in json.loads(result.stdout)["reports"]] == files


def test_text_gives_one_summary_block_at_the_end(folder):
    result = run(folder, "-j", "2")
    lines = result.stdout.splitlines()
    summaries = [i for i, line in enumerate(lines) if line.endswith("layers") and ": " in line
                 and "finding" in line]
    assert len(summaries) == len(_expected_order(folder))
    findings = [i for i, line in enumerate(lines) if " AL" in line and "[" in line]
    assert findings and max(findings) < min(summaries)  # all findings first, then the summaries


def test_errors_are_one_line_each_exit_2_and_no_output(folder, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07 not a model at all \xff\xfe")
    missing = tmp_path / "missing.onnx"
    out = tmp_path / "report.json"
    out.write_text("previous")
    result = run(folder, bad, missing, MODELS / "core_dynamic_axes.onnx", "-j", "2", "--format", "json",
                 "--output", out)
    assert result.returncode == 2
    assert result.stdout == ""
    assert out.read_text() == "previous"
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith("archlint: error: ") for line in lines)
    assert [line.split("archlint: error: ")[1].split(":")[0] for line in lines] == [
        str(bad), str(missing), str(MODELS / "core_dynamic_axes.onnx")]


def test_a_config_error_is_reported_once(folder):
    result = run(folder, "-j", "2", "--set", "no-such-option=1")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "no-such-option" in result.stderr


def test_folder_without_models_is_an_error(tmp_path):
    result = run(tmp_path, "-j", "2")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"archlint: error: {tmp_path}: folder contains no .onnx files"]


def _stderr_on_a_terminal(args, ci: bool) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    if ci:
        env["CI"] = "true"
    out = tempfile.TemporaryFile()  # not a pipe: a full pipe would stall the child while we read stderr
    proc = subprocess.Popen([*CMD, *map(str, args)], cwd=ROOT, stdout=out, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    out.seek(0)
    stdout = out.read().decode()
    return proc.returncode, b"".join(chunks).decode(errors="replace"), stdout


def test_progress_bar_only_on_a_terminal_outside_ci(folder):
    count = len(_expected_order(folder))
    code, stderr, stdout = _stderr_on_a_terminal([folder, "-j", "2", "--format", "json"], ci=False)
    assert code == 1
    assert "linting" in stderr and f"{count}/{count}" in stderr
    assert "linting" not in stdout and len(json.loads(stdout)["reports"]) == count
    code, stderr, _ = _stderr_on_a_terminal([folder, "-j", "2"], ci=True)
    assert code == 1 and stderr == ""
    code, stderr, _ = _stderr_on_a_terminal([MODELS / "example_cnn_legacy.onnx"], ci=False)
    assert code == 1 and stderr == ""  # one model: nothing to show progress of
