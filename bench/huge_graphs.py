"""How archlint copes with huge models: embedded weights, huge node counts, huge external data.

Prints, each measured in a fresh process:

1. VGG-16 legacy export (~550 MB of embedded weights): ``onnx.load`` against archlint's
   loader and against the whole ``archlint`` command: wall time and peak RSS, and ratios.
2. A stack of N conv+relu nodes (10k and 20k): time of each phase (load -> graph ->
   analyses and rules -> report rendering), and the 20k/10k ratio of the analysis time.
   If ``onnx-tool`` is installed (``pip install onnx-tool``), its profile of the same
   10k-node graph for comparison.
3. A model whose external weights file is a 20 GB sparse file: archlint's wall time.

    python bench/huge_graphs.py [--skip-vgg] [--nodes 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fixtures"))
from synthetic import conv_stack, sparse_weights_conv  # noqa: E402

_MEASURE = r"""
import json, resource, sys, time
t = time.perf_counter()
exec(sys.argv[2])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_PHASES = r"""
import json, sys, time
from archlint.engine.config import Config
from archlint.engine.run import lint_graph
from archlint.frontends.onnx_file import load_onnx
from archlint.frontends.onnx_graph import onnx_graph
from archlint.reports import RENDERERS
t0 = time.perf_counter()
loaded = load_onnx(sys.argv[1])
t1 = time.perf_counter()
graph = onnx_graph(loaded)
t2 = time.perf_counter()
report = lint_graph(graph, Config())
t3 = time.perf_counter()
text = RENDERERS["text"]([report], show_layers=False)
t4 = time.perf_counter()
RENDERERS["json"]([report], show_layers=True)
t5 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "graph": t2 - t1, "analyses": t3 - t2, "report": t4 - t3,
                  "json": t5 - t4, "nodes": graph.number_of_nodes()}))
"""

_ONNX_TOOL = r"""
import sys, time, io, contextlib, onnx_tool
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    m = onnx_tool.Model(sys.argv[1])
    m.graph.shape_infer()
    m.graph.profile()
print(time.perf_counter() - t)
"""


def measure(code: str, path: str) -> dict:
    """Run ``code`` (with ``P`` = path) in a fresh interpreter; wall time of ``code`` and peak RSS."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, path, f"P = sys.argv[1]\n{code}"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def phases(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _PHASES, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def after(r: dict) -> float:
    """Seconds from a parsed file to the text report: graph build, analyses, rules, rendering."""
    return r["graph"] + r["analyses"] + r["report"]


def bench_vgg() -> None:
    sys.path.insert(0, str(HERE))
    from _models import exported

    path = str(exported("vgg16", "legacy"))
    size_mb = os.path.getsize(path) / 2**20
    base = measure("import onnx; onnx.load(P)", path)
    ours = measure("from archlint.frontends.onnx_file import load_onnx; load_onnx(P)", path)
    full = measure("from archlint.engine.run import lint; lint(P)", path)
    imports = measure("import onnx, archlint.engine.run", path)
    print(f"VGG-16 legacy export, {size_mb:.0f} MB with embedded weights:")
    print(f"  onnx.load                 {base['seconds']:.3f} s  peak {base['peak_mb']:.0f} MB")
    print(f"  archlint load_onnx        {ours['seconds']:.3f} s  peak {ours['peak_mb']:.0f} MB")
    print(f"  archlint lint (all)       {full['seconds']:.3f} s  peak {full['peak_mb']:.0f} MB")
    print(f"  (python + imports alone:  peak {imports['peak_mb']:.0f} MB)")
    print(f"  ratio load_onnx / onnx.load: time {ours['seconds'] / base['seconds']:.3f}, "
          f"peak memory {ours['peak_mb'] / base['peak_mb']:.3f}; full lint / onnx.load: time "
          f"{full['seconds'] / base['seconds']:.3f}, peak memory {full['peak_mb'] / base['peak_mb']:.3f}")


def bench_stack(nodes: int, folder: Path) -> None:
    results = {}
    for n in (nodes, 2 * nodes):
        path = conv_stack(folder / f"stack{n}.onnx", n // 2)
        results[n] = min((phases(path) for _ in range(5)), key=lambda r: r["graph"] + r["analyses"])
        r = results[n]
        print(f"conv stack, {n} nodes ({r['nodes']} layers), best of 5 processes: parse {r['load']:.3f} s, "
              f"graph build {r['graph']:.3f} s, analyses+rules (lint_graph) {r['analyses']:.3f} s, text report "
              f"{r['report']:.3f} s (JSON report with layers: {r['json']:.3f} s)")
        print(f"  after load_graph (analyses + rules + text report): {r['analyses'] + r['report']:.3f} s; "
              f"after parsing the file (graph build too): {after(r):.3f} s")
    a, b = results[nodes], results[2 * nodes]
    print(f"  time({2 * nodes}) / time({nodes}) after parsing: {after(b) / after(a):.2f} "
          f"(linear = 2); parsing: {b['load'] / a['load']:.2f}")
    try:
        import onnx_tool  # noqa: F401
    except ImportError:
        print("  onnx-tool not installed; skipping the comparison")
        return
    out = subprocess.run([sys.executable, "-c", _ONNX_TOOL, str(folder / f"stack{nodes}.onnx")],
                         capture_output=True, text=True)
    if out.returncode == 0:
        t = float(out.stdout.strip().splitlines()[-1])
        total = a["load"] + after(a)
        print(f"  onnx-tool load+shape_infer+profile on {nodes} nodes: {t:.3f} s; archlint load..report "
              f"{total:.3f} s (ratio archlint/onnx-tool {total / t:.2f})")
    else:
        print(f"  onnx-tool failed: {out.stderr.strip().splitlines()[-1:]}")


def bench_sparse(folder: Path) -> None:
    path = sparse_weights_conv(folder)
    r = measure("from archlint.engine.run import lint; lint(P)", str(path))
    print(f"20 GB sparse external weights file: archlint lint {r['seconds']:.3f} s, peak {r['peak_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--skip-vgg", action="store_true")
    args = parser.parse_args()
    if not args.skip_vgg:
        bench_vgg()
    with tempfile.TemporaryDirectory() as tmp:
        bench_stack(args.nodes, Path(tmp))
        bench_sparse(Path(tmp))


if __name__ == "__main__":
    main()
