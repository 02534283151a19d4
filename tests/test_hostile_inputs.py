"""Broken and hostile model files (GitHub issue 6): archlint runs on files from pull requests.

Every input ends in exit code 2 with exactly one ``archlint: error: FILE: problem`` line on
stderr, or in a normal report: never a traceback, a hang or runaway memory. Each case runs
the real command line in a forked child with a timeout and a 2 GB address-space limit
(``hostile/forkrun.py``); a few run as fresh interpreters too. The corpus is generated
(``hostile/corpus.py``); a hypothesis fuzz test mutates a valid model at the byte and
the protobuf level.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import corpus
from hostile.corpus import MARKER

HERE = Path(__file__).resolve().parent
MEMORY = 2 << 30
TIMEOUT = 60

_ROOT = Path(tempfile.mkdtemp(prefix="archlint-hostile-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
CASES = {c.name: c for c in corpus.build(_ROOT / "models")}
EXTERNAL = {c.name: c for c in corpus.external_cases(_ROOT / "ext" / "model", _ROOT / "ext" / "outside")}


class ForkRunner:
    """Client of ``hostile/forkrun.py``: one pre-imported interpreter, a forked child per run."""

    def __init__(self) -> None:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "hostile" / "forkrun.py")], cwd=_ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = TIMEOUT) -> dict:
        request = {"args": [str(a) for a in args], "cwd": str(cwd or _ROOT), "timeout": timeout, "memory": MEMORY}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cli():
    runner = ForkRunner()
    yield runner
    runner.close()


def check_outcome(result: dict, path: Path, expect: str = "any", hint: str = "") -> str:
    """Assert the run ended cleanly; return ``"error"`` or ``"report"``."""
    assert not result["timed_out"], f"{path}: hung (killed after {TIMEOUT} s)"
    assert result["signal"] == 0, f"{path}: killed by signal {result['signal']}: {result['stderr'][-2000:]}"
    stderr = result["stderr"]
    assert "Traceback" not in stderr, stderr[-3000:]
    if result["rc"] == 2:
        lines = stderr.splitlines()
        assert len(lines) == 1, f"expected one error line, got: {stderr!r}"
        prefix = f"archlint: error: {path}: "
        assert lines[0].startswith(prefix), lines[0]
        problem = lines[0][len(prefix):]
        assert problem.strip(), lines[0]
        assert "internal error" not in problem and " crashed: " not in problem, lines[0]
        assert expect in ("error", "any"), f"expected a report, got: {lines[0]}"
        assert hint in problem, f"expected {hint!r} in: {problem}"
        assert result["stdout"] == ""
        return "error"
    assert result["rc"] in (0, 1), f"exit code {result['rc']}: {stderr[-2000:]}"
    assert expect in ("report", "any"), f"expected an error, got a report:\n{result['stdout'][:2000]}"
    assert stderr == "", stderr
    assert result["stdout"].strip(), "empty report"
    return "report"


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus(cli, name):
    case = CASES[name]
    check_outcome(cli(case.path, *case.args), case.path, case.expect, case.hint)


@pytest.mark.parametrize("name", sorted(EXTERNAL))
def test_external_data(cli, name, tmp_path):
    case = EXTERNAL[name]
    # run from an unrelated folder: locations resolve against the model's folder, not the cwd
    check_outcome(cli(case.path, cwd=tmp_path), case.path, case.expect, case.hint)


def test_symlinked_escape_is_refused_before_reading(cli, tmp_path):
    """The refused target is unreadable: a refusal that came from reading it would say otherwise."""
    case = EXTERNAL["ext_symlink_file.onnx"]
    result = cli(case.path, cwd=tmp_path)
    assert check_outcome(result, case.path, "error") == "error"
    assert "resolves outside" in result["stderr"]
    for name in ("ext_dotdot.onnx", "ext_absolute.onnx", "ext_symlink_dir.onnx"):
        assert "outside the model's folder" in cli(EXTERNAL[name].path)["stderr"]


def test_model_file_itself_may_be_a_symlink(cli, tmp_path):
    """Only external data is confined; the model the user names may live anywhere."""
    link = tmp_path / "link.onnx"
    link.symlink_to(CASES["valid.onnx"].path)
    assert check_outcome(cli(link), link, "report") == "report"


def test_paths_that_are_not_files(cli, tmp_path):
    (tmp_path / "folder.onnx").mkdir()
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    for path, hint in ((tmp_path / "missing.onnx", "no such file"), (fifo, "not a regular file"),
                       (Path("/dev/zero"), "not a regular file")):
        check_outcome(cli(path, timeout=20), path, "error", hint)


def test_no_pickle_is_ever_loaded(cli):
    """Pickles named .onnx, .pt and .pth are refused with a message saying so, and never unpickled."""
    for name in ("pickle.onnx", "pickle.pt", "pickle4.pth"):
        path = CASES[name].path
        result = cli(path, timeout=120)
        check_outcome(result, path, "error")
        assert "pickle" in result["stderr"]
        if path.suffix == ".onnx":
            assert "not an ONNX model" in result["stderr"]
    assert not (CASES["pickle.onnx"].path.parent / MARKER).exists()
    assert not (_ROOT / MARKER).exists()


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


@pytest.mark.parametrize("name", ["valid.onnx", "truncated_10.onnx", "huge_length.onnx", "if_nested_120.onnx",
                                  "pickle.pt", "image.onnx", "kernel_1e6_fits.onnx"])
def test_fresh_interpreter(name):
    """The same outcome from the installed entry point in a fresh process (no fork server)."""
    case = CASES[name]
    proc = subprocess.run([sys.executable, "-c", "from archlint.cli import run; run()", str(case.path)],
                          capture_output=True, text=True, timeout=180, preexec_fn=_limit_memory, cwd=_ROOT)
    result = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "timed_out": False,
              "signal": -proc.returncode if proc.returncode < 0 else 0}
    check_outcome(result, case.path, case.expect, case.hint)
    assert not (case.path.parent / MARKER).exists()


def test_torch_checkpoint_named_onnx(cli, tmp_path):
    """A real ``torch.save`` file handed over as ``.onnx``: one line saying it is not ONNX."""
    import torch
    path = tmp_path / "weights.onnx"
    torch.save({"w": torch.zeros(2)}, path)
    result = cli(path)
    check_outcome(result, path, "error", "not an ONNX model")
    assert "zip archive" in result["stderr"]


# --- fuzzing ------------------------------------------------------------------------------

SEED = corpus.valid_model()
SEED_BYTES = SEED.SerializeToString()
_FUZZ = _ROOT / "fuzz"
_FUZZ.mkdir(exist_ok=True)
_FUZZ_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))

_byte_edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(SEED_BYTES) - 1), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, len(SEED_BYTES) - 1), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(SEED_BYTES)), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, len(SEED_BYTES)), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.integers(0, len(SEED_BYTES)), st.just(0)),
)


def _apply_bytes(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in edits:
        pos = min(pos, len(buf))
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= 1 << arg
        elif kind == "set" and pos < len(buf):
            buf[pos] = arg
        elif kind == "cut":
            del buf[pos:pos + arg]
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


@_FUZZ_SETTINGS
@given(edits=st.lists(_byte_edit, min_size=1, max_size=4))
def test_fuzz_bytes(cli, edits):
    path = _FUZZ / "bytes.onnx"
    path.write_bytes(_apply_bytes(SEED_BYTES, edits))
    check_outcome(cli(path), path)


_INTS = st.one_of(st.integers(-3, 8), st.sampled_from([0, -1, 2**31, 2**40, 2**62, -(2**62), 10**6]))
_proto_edit = st.one_of(
    st.tuples(st.just("attr_int"), st.integers(0, 7), st.integers(0, 5), st.lists(_INTS, max_size=5)),
    st.tuples(st.just("input_dim"), st.integers(0, 3), _INTS, st.just(None)),
    st.tuples(st.just("init_dim"), st.integers(0, 4), st.integers(0, 3), _INTS),
    st.tuples(st.just("op_type"), st.integers(0, 7),
              st.sampled_from(["Conv", "Relu", "FooBar", "MaxPool", "Gemm", "Add", "Concat", "If", "Reshape",
                               "ConvTranspose", "AveragePool", "Flatten", ""]), st.just(None)),
    st.tuples(st.just("drop_node"), st.integers(0, 7), st.just(0), st.just(None)),
    st.tuples(st.just("rewire"), st.integers(0, 7), st.integers(0, 2),
              st.sampled_from(["x", "w1", "c1", "r2", "y", "nowhere", ""])),
    st.tuples(st.just("drop_init"), st.integers(0, 4), st.just(0), st.just(None)),
    st.tuples(st.just("domain"), st.integers(0, 7), st.sampled_from(["com.example", "ai.onnx", "x"]), st.just(None)),
)


def _apply_proto(edits) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(SEED)
    g = model.graph
    for kind, i, a, b in edits:
        nodes = g.node
        if kind == "attr_int" and nodes:
            node = nodes[i % len(nodes)]
            names = ["kernel_shape", "strides", "pads", "dilations", "group", "axis"]
            name = names[a % len(names)]
            for attr in list(node.attribute):
                if attr.name == name:
                    node.attribute.remove(attr)
            if name in ("group", "axis"):
                node.attribute.append(onnx.helper.make_attribute(name, b[0] if b else 0))
            else:
                node.attribute.append(onnx.helper.make_attribute(name, list(b), attr_type=onnx.AttributeProto.INTS))
        elif kind == "input_dim":
            dims = g.input[0].type.tensor_type.shape.dim
            dims[i % len(dims)].dim_value = a
        elif kind == "init_dim" and g.initializer:
            tensor = g.initializer[i % len(g.initializer)]
            if tensor.dims:
                tensor.dims[a % len(tensor.dims)] = b
        elif kind == "op_type" and nodes:
            nodes[i % len(nodes)].op_type = a
        elif kind == "drop_node" and len(nodes) > 1:
            del nodes[i % len(nodes)]
        elif kind == "rewire" and nodes:
            node = nodes[i % len(nodes)]
            if node.input:
                node.input[a % len(node.input)] = b
        elif kind == "drop_init" and g.initializer:
            del g.initializer[i % len(g.initializer)]
        elif kind == "domain" and nodes:
            nodes[i % len(nodes)].domain = a
    return model


@_FUZZ_SETTINGS
@given(edits=st.lists(_proto_edit, min_size=1, max_size=4))
def test_fuzz_proto(cli, edits):
    path = _FUZZ / "proto.onnx"
    path.write_bytes(_apply_proto(edits).SerializeToString())
    check_outcome(cli(path), path)


def test_seed_is_valid(cli):
    """The fuzz seed itself gives a report, so the fuzzers start from a working model."""
    path = _FUZZ / "seed.onnx"
    path.write_bytes(SEED_BYTES)
    assert check_outcome(cli(path), path, "report") == "report"
    assert np.frombuffer(SEED_BYTES[:1], np.uint8)[0] == 0x08  # starts with ir_version: not "text"
