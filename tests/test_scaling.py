"""Huge inputs (GitHub issue 6): work linear in nodes, weights never read.

Work is counted in function calls (``conftest.count_calls``), which do not depend on the
machine or its load; ``bench/huge_graphs.py`` prints the time each phase takes.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archlint.api import Config, Graph, Layer, Op, lint_graph
from archlint.frontends.onnx_file import load_onnx
from archlint.frontends.onnx_graph import onnx_graph
from archlint.reports import RENDERERS
from conftest import count_calls, load_synthetic

_PEAK = r"""
import json, sys
mode, path = sys.argv[1], sys.argv[2]
import onnx
from archlint.frontends.onnx_file import load_onnx
if mode == "onnx":
    onnx.load(path)
elif mode == "archlint":
    loaded = load_onnx(path)
# VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would include the parent pytest's peak
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({"peak_kb": peak, "skipped": loaded.skipped_bytes if mode == "archlint" else 0}))
"""


def phase_calls(path: Path) -> dict:
    """Calls made by each phase on the model at ``path``: parse, graph build, lint, text report."""
    loaded, load = count_calls(load_onnx, str(path))
    graph, build = count_calls(onnx_graph, loaded)
    report, lint = count_calls(lint_graph, graph, Config())
    _, text = count_calls(RENDERERS["text"], [report], show_layers=False)
    return {"load": load, "graph": build, "analyses": lint, "report": text,
            "layers": report.summary.layers, "macs": report.summary.macs}


def test_conv_stack_work_is_linear(tmp_path):
    conv_stack = load_synthetic().conv_stack
    phase_calls(conv_stack(tmp_path / "warm.onnx", 10))  # imports and rule discovery
    small = phase_calls(conv_stack(tmp_path / "s4k.onnx", 2000))
    large = phase_calls(conv_stack(tmp_path / "s8k.onnx", 4000))
    assert small["layers"] == 4000 and large["layers"] == 8000
    assert small["macs"] == 2000 * 8 * 8 * 9 * 16 * 16
    for phase in ("load", "graph", "analyses", "report"):
        assert large[phase] / small[phase] < 2.2, (phase, small, large)


def test_float_conv_stack_load_converts_no_weight_and_skips_float_only_passes(tmp_path, monkeypatch):
    """Small weights keep their bytes for shape inference, but none is turned into an array; and a
    model with no quantization op or If never enters the passes that rewrite them."""
    from archlint.frontends import onnx_file, onnx_quantized

    entered = []
    monkeypatch.setattr(onnx_file.numpy_helper, "to_array", lambda *a, **k: entered.append("to_array"))
    monkeypatch.setattr(onnx_quantized, "_graph_as_float", lambda *a, **k: entered.append("_graph_as_float"))
    monkeypatch.setattr(onnx_file, "inline_branches", lambda *a, **k: entered.append("inline_branches"))
    loaded = load_onnx(load_synthetic().conv_stack(tmp_path / "stack.onnx", 50))
    graph = onnx_graph(loaded)
    assert entered == []
    assert len(graph.graph["inputs"]) == 1 and graph.number_of_nodes() == 1 + 100
    assert graph.layer("conv49").param_shapes == ((8, 8, 3, 3),)


def _unpadded_chain(n: int, every_output: bool) -> Graph:
    """``n`` unpadded 3x1 convs, each shrinking the height by 2; optionally every conv a graph output.

    Shapes that made earlier versions quadratic: the border loss path grows by one layer
    per conv, and with every output kept the live activations grow by one tensor per conv.
    """
    h = 2 * n + 4
    g = Graph(model=f"chain{n}", inputs=["x"], unsupported_ops={})
    g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 2, h, 3)))
    prev, outputs = "x", []
    for i in range(n):
        name = f"conv{i}"
        g.add_node(name, layer=Layer(name, Op.CONV, "Conv", (1, 2, h - 2 * (i + 1), 3),
                                     ((1, 2, h - 2 * i, 3),), kernel=(3, 1), stride=(1, 1), pads_begin=(0, 0),
                                     pads_end=(0, 0), dilation=(1, 1), in_channels=2, out_channels=2,
                                     param_shapes=((2, 2, 3, 1),)))
        g.add_edge(prev, name, index=0)
        outputs.append(name)
        prev = name
    g.graph["outputs"] = outputs if every_output else [prev]
    return g


@pytest.mark.parametrize("every_output", [False, True], ids=["one-output", "every-output"])
def test_rules_and_analyses_stay_linear_on_shrinking_chains(every_output):
    config = Config(options={"max-peak-activation": 1, "max-macs": 1, "max-params": 1})

    def calls(n: int) -> int:
        report, work = count_calls(lint_graph, _unpadded_chain(n, every_output), config)
        codes = {f.code for f in report.findings}
        assert {"AL301", "AL302", "AL603"} <= codes and ("AL101" in codes) != every_output, codes
        return work

    calls(200)  # warm up: imports and rule discovery
    small, large = calls(1500), calls(3000)
    assert large / small < 2.2, (small, large)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_sparse_20gb_external_weights_are_never_read(tmp_path):
    synthetic = load_synthetic()
    path = synthetic.sparse_weights_conv(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "from archlint.cli import run; run()", str(path),
                           "--format", "json"], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_memory)
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["params"] == synthetic.SPARSE_COUT * synthetic.SPARSE_CIN
    assert summary["macs"] == synthetic.SPARSE_COUT * synthetic.SPARSE_CIN * 16


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    """A conv net with ~130 MB of embedded weights (legacy-export style)."""
    rng = np.random.default_rng(0)
    convs = [rng.standard_normal((512, 512, 3, 3), dtype=np.float32) for _ in range(14)]
    nodes, inits, prev = [], [], "x"
    for i, w in enumerate(convs):
        inits.append(numpy_helper.from_array(w, f"features.{i}.weight"))
        nodes.append(helper.make_node("Conv", [prev, f"features.{i}.weight"], [f"c{i}"],
                                      name=f"/features/features.{i}/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        prev = f"c{i}"
    graph = helper.make_graph(nodes, "vggish", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              [1, 512, 14, 14])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)], inits)
    path = tmp_path_factory.mktemp("embedded") / "vggish.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _peak(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _PEAK, mode, str(path)], capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_weights_parsed_without_their_bytes(embedded):
    size = embedded.stat().st_size
    ours, base, imports = _peak("archlint", embedded), _peak("onnx", embedded), _peak("imports", embedded)
    assert ours["skipped"] >= 0.99 * size
    assert (ours["peak_kb"] - imports["peak_kb"]) * 1024 < size / 8, (ours, imports)  # well below the file size
    assert (base["peak_kb"] - imports["peak_kb"]) * 1024 > size / 2, (base, imports)  # onnx.load holds it all
