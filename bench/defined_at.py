"""What finding construction lines (defined_at) costs: whole-process ``archlint MODEL`` with and without.

"Without" replaces the ONNX frontend's resolution by an empty one in the same process
setup; both run as fresh processes, interleaved, several times, in CPU time (less
sensitive than wall time to a loaded machine) and wall time. Also prints the CPU time of
the resolution alone, with cold source caches, in this process.

    python bench/defined_at.py [--runs 9] [--arch resnet50]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from _models import exported

WITH = "import sys; from archlint.cli import run; run(sys.argv[1:])"
WITHOUT = ("import sys; import archlint.frontends.onnx_graph as g; "
           "g._Builder._definitions = lambda self, nodes, paths: [None] * len(nodes); "
           "from archlint.cli import run; run(sys.argv[1:])")


def run(code: str, path: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``archlint`` process."""
    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start_cpu, start = cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", code, path, "--exit-zero"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cpu() - start_cpu, time.perf_counter() - start


def resolution_cpu(path: str, runs: int) -> float:
    """Least CPU time of the definitions step of one graph build, source caches cleared each time."""
    import archlint.frontends.onnx_graph as g
    from archlint.frontends import construction, construction_onnx
    from archlint.frontends.onnx_file import load_onnx

    caches = (construction.source_text, construction.source_tree, construction._top_level_class,
              construction.class_def, construction._class_bindings, construction_onnx._on_sys_path)
    resolve = g._Builder._definitions
    times = []

    def timed(self, nodes, paths):
        start = time.process_time()
        found = resolve(self, nodes, paths)
        times.append(time.process_time() - start)
        return found

    g._Builder._definitions = timed
    loaded = load_onnx(path)
    for _ in range(runs):
        for cache in caches:
            cache.cache_clear()
        g.onnx_graph(loaded)
    g._Builder._definitions = resolve
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--arch", default="resnet50")
    args = parser.parse_args()
    path = str(exported(args.arch, "dynamo"))
    with_, without = [], []
    for _ in range(args.runs):
        without.append(run(WITHOUT, path))
        with_.append(run(WITH, path))
    for k, what in ((0, "CPU"), (1, "wall")):
        a, b = statistics.median(t[k] for t in without), statistics.median(t[k] for t in with_)
        print(f"{args.arch} (dynamo export), {what} time: without defined_at {a:.3f} s, with {b:.3f} s, "
              f"ratio {b / a:.3f} (medians of {args.runs} processes)")
    print(f"resolution alone: {1000 * resolution_cpu(path, args.runs):.1f} ms CPU (cold source caches)")


if __name__ == "__main__":
    main()
