"""Whole-process time of archlint on torchvision ResNet-50 given as an ``nn.Module``, against
torchinfo and fvcore on the same model.

Each tool runs in a fresh process that imports torch and torchvision, builds the model and
analyses it for a 1x3x224x224 input; a baseline process does only the imports and the model
construction, so ``tool - baseline`` is the analysis itself. Runs are interleaved and the
script prints medians and the ratios measured in this run.

    python bench/torch_module.py [--runs 3] [--arch resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

SETUP = """
import sys, time
import torch
_lib = torch.library.Library("torchvision", "DEF")
_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import torchvision
model = getattr(torchvision.models, sys.argv[1])().eval()
x = torch.randn(1, 3, 224, 224)
"""
TOOLS = {
    "baseline (imports + model)": "pass",
    "archlint": "import archlint\nr = archlint.lint(model, example_inputs=x)\nprint(r.summary.macs, r.summary.params)",
    "torchinfo": ("import torchinfo\n"
                  "s = torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)\n"
                  "print(s.total_mult_adds, s.total_params)"),
    "fvcore": ("from fvcore.nn import FlopCountAnalysis, parameter_count\n"
               "f = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)\n"
               "print(f.total(), parameter_count(model)[''])"),
}


def wall(code: str, arch: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SETUP + code, arch], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"benchmark process failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--arch", default="resnet50")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in TOOLS}
    outputs: dict[str, str] = {}
    for _ in range(args.runs):
        for name, code in TOOLS.items():
            elapsed, out = wall(code, args.arch)
            times[name].append(elapsed)
            outputs[name] = out
    med = {name: statistics.median(values) for name, values in times.items()}
    base = med["baseline (imports + model)"]
    print(f"{args.arch} from nn.Module, 1x3x224x224, median of {args.runs} fresh processes")
    print(f"{'tool':28s} {'whole process':>14s} {'minus baseline':>15s}  output (MACs, params)")
    for name in TOOLS:
        print(f"{name:28s} {med[name]:13.2f}s {med[name] - base:14.2f}s  {outputs[name]}")
    ours = med["archlint"]
    for peer in ("torchinfo", "fvcore"):
        print(f"archlint / {peer}: whole process {ours / med[peer]:.2f}x, "
              f"analysis only {(ours - base) / max(med[peer] - base, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
