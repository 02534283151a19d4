"""Whole-process time of ``archlint MODEL --format json`` against a one-liner that only loads and shape-infers MODEL.

The floor imports onnx and networkx, loads the graph (``load_external_data=False``) and
runs ``onnx.shape_inference.infer_shapes``: the least any ONNX analyser must do. Both run
as fresh processes, interleaved, best of ``--runs``; each is measured in CPU time (user +
system of the whole process, which other work on a shared machine barely disturbs) and in
wall time, on:

1. torchvision ResNet-50, dynamo export: the ratio archlint / floor (goal: at most 1.2);
   the legacy export is printed too.
2. A stack of 10,000 conv and relu nodes (``fixtures/synthetic.py``): archlint minus the
   floor (goal: at most 0.5 s).

    python bench/onnx_load.py [--runs 9] [--arch resnet50] [--nodes 10000] [--python PATH]

Both are measured with a regular install (``pip install .``), as users run archlint: an
editable install adds an import hook to every process, which is a good part of the margin
on the dynamo file. By default the script installs this checkout into a temporary virtual
environment that sees the system's packages (onnx, networkx), and runs both one-liners with
its interpreter, from a scratch folder so that the checkout itself is not imported;
``--python`` measures an interpreter that has archlint installed already.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fixtures"))
from synthetic import conv_stack  # noqa: E402

FLOOR = ("import sys, onnx, networkx; "
         "m = onnx.load(sys.argv[1], load_external_data=False); "
         "onnx.shape_inference.infer_shapes(m)")
ARCHLINT = "import sys; from archlint.cli import run; run(sys.argv[1:])"


def regular_install(folder: Path) -> str:
    """Interpreter of a new virtual environment in ``folder`` with this checkout ``pip install``ed (not editable)."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(HERE.parent)], check=True,
                   cwd=folder)
    return python


def run(python: str, code: str, *args: str, cwd: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a fresh interpreter running ``code``."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([python, "-c", code, *args], check=False, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def best_of(python: str, runs: int, path: str, cwd: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best (CPU, wall) of the floor and of ``archlint --format json`` on ``path``, interleaved."""
    floor, ours = [], []
    for _ in range(runs):
        floor.append(run(python, FLOOR, path, cwd=cwd))
        ours.append(run(python, ARCHLINT, path, "--format", "json", "--exit-zero", cwd=cwd))
    return tuple(min(t[i] for t in floor) for i in (0, 1)), tuple(min(t[i] for t in ours) for i in (0, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--python", help="interpreter with archlint installed (default: a temporary "
                                         "regular install of this checkout)")
    args = parser.parse_args()
    from _models import exported

    models = {exporter: str(exported(args.arch, exporter)) for exporter in ("dynamo", "legacy")}
    with tempfile.TemporaryDirectory() as tmp:
        python = args.python or regular_install(Path(tmp) / "venv")
        where = subprocess.run([python, "-c", "import archlint; print(archlint.__file__)"], cwd=tmp, check=True,
                               capture_output=True, text=True).stdout.strip()
        print(f"archlint imported from {Path(where).parent}; best of {args.runs} processes")
        ok = True
        for exporter, model in models.items():
            floor, ours = best_of(python, args.runs, model, tmp)
            goal = " (goal: at most 1.2x)" if exporter == "dynamo" else ""
            print(f"{args.arch} ({exporter} export): floor (load + infer_shapes) / archlint --format json")
            for i, clock in enumerate(("CPU", "wall")):
                print(f"  {clock:4s} {floor[i]:.3f} s / {ours[i]:.3f} s, ratio {ours[i] / floor[i]:.2f}x{goal}")
            ok = ok and (exporter != "dynamo" or ours[0] / floor[0] <= 1.2)
        path = conv_stack(Path(tmp) / "stack.onnx", args.nodes // 2)
        floor, ours = best_of(python, args.runs, str(path), tmp)
    print(f"conv stack, {args.nodes} nodes: floor / archlint --format json")
    for i, clock in enumerate(("CPU", "wall")):
        print(f"  {clock:4s} {floor[i]:.3f} s / {ours[i]:.3f} s, archlint - floor {ours[i] - floor[i]:.3f} s "
              f"(goal: at most 0.5 s)")
    ok = ok and ours[0] - floor[0] <= 0.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
