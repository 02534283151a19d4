"""Time of ``archlint diff BASE HEAD`` against two single ``archlint MODEL`` runs, on two ResNet-50 files.

BASE is torchvision ResNet-50 exported with the legacy exporter, HEAD with the dynamo
exporter (the two files share nothing but the architecture). Each measurement is a fresh
process; runs are interleaved; the script prints medians and the ratio
diff / (single BASE + single HEAD), which should stay at or below 1.5.

    python bench/diff.py [--runs 5] [--arch resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _models import exported

ARCHLINT = "import sys; from archlint.cli import main; main(sys.argv[1:])"


def wall(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", ARCHLINT, *args, "--isolated"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--arch", default="resnet50")
    args = parser.parse_args()
    base, head = str(exported(args.arch, "legacy")), str(exported(args.arch, "dynamo"))
    wall(base), wall(head)  # warm the page cache
    singles, diffs = [], []
    for _ in range(args.runs):
        singles.append(wall(base) + wall(head))
        diffs.append(wall("diff", base, head))
    single, diff = statistics.median(singles), statistics.median(diffs)
    print(f"{args.arch}: two single runs {single:.3f} s, diff {diff:.3f} s (median of {args.runs})")
    print(f"ratio diff / two single runs: {diff / single:.2f} (limit 1.5)")
    return 0 if diff / single <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
