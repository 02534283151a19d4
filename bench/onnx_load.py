"""Whole-process time of ``archlint MODEL`` against a one-liner that only loads and shape-infers it.

The baseline imports onnx and networkx, loads the graph (``load_external_data=False``) and
runs ``onnx.shape_inference.infer_shapes``: the least any ONNX analyser must do. Both run
as fresh processes, interleaved, several times; the script prints medians and the ratio.

    python bench/onnx_load.py [--runs 7] [--arch resnet50]

Measure with a regular install (``pip install .``): an editable install adds an import
hook that costs about 20 ms per process, which is most of the margin on the dynamo file.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _models import exported

BASELINE = ("import sys, onnx, networkx; "
            "m = onnx.load(sys.argv[1], load_external_data=False); "
            "onnx.shape_inference.infer_shapes(m)")
ARCHLINT = "import sys; from archlint.cli import main; main(sys.argv[1:])"


def wall(code: str, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--arch", default="resnet50")
    args = parser.parse_args()
    import archlint

    print(f"archlint imported from {Path(archlint.__file__).parent}")
    for exporter in ("dynamo", "legacy"):
        path = str(exported(args.arch, exporter))
        base, ours = [], []
        for _ in range(args.runs):
            base.append(wall(BASELINE, path))
            ours.append(wall(ARCHLINT, path, "--exit-zero"))
        b, o = statistics.median(base), statistics.median(ours)
        print(f"{args.arch} ({exporter} export): baseline load+infer_shapes {b:.3f} s, "
              f"archlint {o:.3f} s, ratio {o / b:.2f}x")


if __name__ == "__main__":
    main()
