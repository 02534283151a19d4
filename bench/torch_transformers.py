"""MACs of torchvision transformers through the PyTorch path against their ONNX exports,
FlopCounterMode (attention as explicit products) and torchvision's published GFLOPS.

Each model is built once (random weights), linted as an ``nn.Module``, exported with the
dynamo ONNX exporter into a temporary folder and linted again from the file. Prints one row
per model with the four counts and the time each archlint run took, measured in this run.

    python bench/torch_transformers.py [vit_b_16 swin_t maxvit_t ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

_LIB = torch.library.Library("torchvision", "DEF")
_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import torchvision  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import archlint  # noqa: E402
from archlint.export import export_onnx  # noqa: E402

WEIGHTS = {"vit_b_16": "ViT_B_16_Weights", "swin_t": "Swin_T_Weights", "maxvit_t": "MaxVit_T_Weights",
           "vit_b_32": "ViT_B_32_Weights", "swin_v2_t": "Swin_V2_T_Weights"}


def counted(model, x) -> int:
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    return counter.get_total_flops() // 2


def main(names: list[str]) -> None:
    print(f"{'model':<10} {'torch path':>15} {'ONNX export':>15} {'FlopCounter':>15} {'published':>10} "
          f"{'torch s':>8} {'onnx s':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            torch.manual_seed(0)
            weights = getattr(torchvision.models, WEIGHTS[name]).DEFAULT
            size = weights.transforms().crop_size[0]
            model = getattr(torchvision.models, name)().eval()
            x = torch.randn(1, 3, size, size)
            start = time.perf_counter()
            module_macs = archlint.lint(model, example_inputs=x).summary.macs
            torch_seconds = time.perf_counter() - start
            path = Path(folder) / f"{name}.onnx"
            export_onnx(model, x, path, "dynamo")
            start = time.perf_counter()
            onnx_macs = archlint.lint(path).summary.macs
            onnx_seconds = time.perf_counter() - start
            print(f"{name:<10} {module_macs:>15,} {onnx_macs:>15,} {counted(model, x):>15,} "
                  f"{weights.meta['_ops']:>10.3f} {torch_seconds:>8.2f} {onnx_seconds:>7.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["vit_b_16", "swin_t", "maxvit_t"])
