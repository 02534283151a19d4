"""Time of ``archlint diff``: on two ResNet-50 files against two single runs, and on wide fan-outs.

1. BASE is torchvision ResNet-50 exported with the legacy exporter, HEAD with the dynamo
   exporter (the two files share nothing but the architecture). The script prints the ratio
   diff / (single BASE + single HEAD), which should stay at or below 1.5.
2. A model of N identical parallel conv branches (op-named, so the diff matches them by
   structure, ``fixtures/synthetic.py``) diffed against itself, for N = 1,000 and 4,000:
   the whole process and the matching step alone (``diff_graphs``), and the ratio
   4,000 / 1,000, which should stay at or below 6 (linear = 4).

Each measurement is a fresh process, best of ``--runs``; runs are interleaved.

    python bench/diff.py [--runs 5] [--arch resnet50] [--skip-resnet]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fixtures"))
from synthetic import conv_fan_out  # noqa: E402

ARCHLINT = "import sys; from archlint.cli import run; run(sys.argv[1:])"
_DIFF_STEP = r"""
import json, sys, time
from archlint.diff import diff_graphs
from archlint.engine.run import lint_graph
from archlint.frontends import load_graph
graph = load_graph(sys.argv[1])
report = lint_graph(graph)
t = time.perf_counter()
diff_graphs(graph, report, graph, report)
print(json.dumps({"diff_graphs": time.perf_counter() - t}))
"""


def wall(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", ARCHLINT, *args, "--isolated"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def diff_step(path: str) -> float:
    out = subprocess.run([sys.executable, "-c", _DIFF_STEP, path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["diff_graphs"]


def bench_resnet(arch: str, runs: int) -> bool:
    from _models import exported

    base, head = str(exported(arch, "legacy")), str(exported(arch, "dynamo"))
    wall(base), wall(head)  # warm the page cache
    singles, diffs = [], []
    for _ in range(runs):
        singles.append(wall(base) + wall(head))
        diffs.append(wall("diff", base, head))
    single, diff = min(singles), min(diffs)
    print(f"{arch}: two single runs {single:.3f} s, diff {diff:.3f} s (best of {runs} processes)")
    print(f"  ratio diff / two single runs: {diff / single:.2f} (limit 1.5)")
    return diff / single <= 1.5


def bench_fan_out(runs: int, folder: Path) -> bool:
    sizes = (1000, 4000)
    paths = {n: str(conv_fan_out(folder / f"fan{n}.onnx", n)) for n in sizes}
    lint, whole, step = ({n: [] for n in sizes} for _ in range(3))
    for _ in range(runs):
        for n in sizes:
            lint[n].append(wall(paths[n]))
            whole[n].append(wall("diff", paths[n], paths[n]))
            step[n].append(diff_step(paths[n]))
    for n in sizes:
        print(f"{n} parallel conv branches, best of {runs} processes: archlint {min(lint[n]):.3f} s, "
              f"archlint diff (itself) {min(whole[n]):.3f} s, of which matching and comparing "
              f"(diff_graphs) {min(step[n]):.3f} s")
    small, large = sizes
    whole_ratio = min(whole[large]) / min(whole[small])
    step_ratio = min(step[large]) / min(step[small])
    print(f"  ratio {large} / {small} branches: archlint diff {whole_ratio:.2f}, diff_graphs {step_ratio:.2f} "
          f"(linear = {large // small}, limit 6)")
    return max(whole_ratio, step_ratio) <= 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    ok = True
    if not args.skip_resnet:
        ok = bench_resnet(args.arch, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        ok = bench_fan_out(args.runs, Path(tmp)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
