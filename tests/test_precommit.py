"""The pre-commit hook: the shipped ``.pre-commit-hooks.yaml`` is a valid manifest, and the real
``pre-commit`` tool, installed as a git hook in a temporary repository, blocks a commit of a
flawed model and lets the fixed model through.

Offline by design: with the shipped ``language: python`` pre-commit would build a virtualenv
and pip-install archlint from the hook repository. The test instead takes the shipped hook
definition (id, name, entry, files, ...) unchanged into a ``repo: local`` config and only
switches ``language`` to ``system``, with ``entry`` resolved to the ``archlint`` installed
in this environment, so that it exercises this checkout's hook and code with no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FLAWED = ROOT / "fixtures" / "models" / "example_cnn_legacy.onnx"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def clean_model(path: Path) -> None:
    """A small padded ResNet-like net: stem, stride-2 conv, residual block, stride-2 conv,
    conv, global average pooling, dense head (16x16 input, receptive field 21 > 16)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(name: str, x: str, cin: int, cout: int, stride: int) -> str:
        w = numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32), f"{name}.weight")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.bias")
        inits.extend([w, b])
        nodes.append(helper.make_node("Conv", [x, w.name, b.name], [name], name=name, kernel_shape=[3, 3],
                                      strides=[stride, stride], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    h = conv("stem", "x", 3, 8, 1)
    h = conv("down1", h, 8, 8, 2)
    r = conv("block.conv1", h, 8, 8, 1)
    nodes.append(helper.make_node("Add", [r, h], ["block.add"], name="block.add"))
    h = conv("down2", "block.add", 8, 8, 2)
    h = conv("head", h, 8, 8, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat"))
    inits.append(numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc.weight"))
    inits.append(numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "clean", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _archlint_executable() -> str:
    beside = Path(sys.executable).with_name("archlint")
    found = str(beside) if beside.is_file() else shutil.which("archlint")
    if not found:
        pytest.fail("the archlint console script is not installed (pip install -e .)")
    return found


def test_shipped_manifest_is_valid():
    from pre_commit.clientlib import load_manifest

    (hook,) = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert hook["id"] == "archlint"
    assert hook["language"] == "python"
    assert hook["entry"] == "archlint"
    assert hook["files"] == r"\.(onnx|pt2)$"
    assert hook["pass_filenames"] is True


@pytest.fixture
def repo(tmp_path) -> tuple[Path, dict]:
    work = tmp_path / "repo"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    (tmp_path / "gitconfig").write_text("[user]\n\tname = Test\n\temail = test@example.invalid\n"
                                        "[commit]\n\tgpgsign = false\n[init]\n\tdefaultBranch = main\n")
    env.update(GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"), GIT_CONFIG_NOSYSTEM="1",
               PRE_COMMIT_HOME=str(tmp_path / "pre-commit-cache"), HOME=str(tmp_path))
    env.pop("CI", None)

    shipped = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = dict(shipped[0], language="system", entry=_archlint_executable())
    config = {"repos": [{"repo": "local", "hooks": [hook]}]}
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "README.md").write_text("models\n")
    git(work, env, "init", "-q")
    git(work, env, "add", ".pre-commit-config.yaml", "README.md")
    git(work, env, "commit", "-q", "-m", "setup")
    result = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return work, env


def git(work: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"git {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def commits(work: Path, env: dict) -> int:
    return int(git(work, env, "rev-list", "--count", "HEAD").stdout)


def test_commit_of_flawed_model_is_blocked_then_fixed_model_passes(repo, tmp_path):
    work, env = repo
    clean = tmp_path / "clean.onnx"
    clean_model(clean)
    lint_clean = subprocess.run([_archlint_executable(), str(clean)], capture_output=True, text=True)
    assert lint_clean.returncode == 0, lint_clean.stdout  # precondition: the fixed model passes
    assert subprocess.run([_archlint_executable(), str(FLAWED)], capture_output=True).returncode == 1

    # a commit without models skips the hook
    (work / "README.md").write_text("models, see models/\n")
    git(work, env, "add", "README.md")
    skipped = git(work, env, "commit", "-m", "docs")
    assert "(no files to check)Skipped" in skipped.stdout + skipped.stderr
    assert commits(work, env) == 2

    (work / "models").mkdir()
    shutil.copy(FLAWED, work / "models" / "net.onnx")
    git(work, env, "add", "models/net.onnx")
    blocked = git(work, env, "commit", "-m", "add net", check=False)
    output = blocked.stdout + blocked.stderr  # git shows the hook's output on either stream
    assert blocked.returncode != 0
    assert "Failed" in output and "models/net.onnx" in output
    assert "AL501" in output  # the flawed dense head is named in the hook's output
    assert commits(work, env) == 2

    shutil.copy(clean, work / "models" / "net.onnx")
    git(work, env, "add", "models/net.onnx")
    allowed = git(work, env, "commit", "-m", "add net (fixed)", check=False)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "archlint (CNN architecture linter)" in allowed.stdout + allowed.stderr
    assert "Passed" in allowed.stdout + allowed.stderr
    assert commits(work, env) == 3
    assert git(work, env, "show", "--name-only", "--format=", "HEAD").stdout.split() == ["models/net.onnx"]
