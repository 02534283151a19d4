"""Shared by the bench scripts: export torchvision models to ONNX once, into bench/.models/."""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parent / ".models"
_LIB = None


def torchvision_models():
    """``torchvision.models`` usable on a CPU-only torch (schemas its C ops would define)."""
    import torch

    global _LIB
    if _LIB is None:
        _LIB = torch.library.Library("torchvision", "DEF")
        _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision

    return torchvision.models


def exported(arch: str, exporter: str, size: int = 224) -> Path:
    """Path of ``arch`` exported with ``exporter`` ("legacy" or "dynamo"), exporting if missing."""
    MODELS.mkdir(exist_ok=True)
    path = MODELS / f"{arch}_{exporter}.onnx"
    if path.exists():
        return path
    import torch

    from archlint.export import export_onnx

    return export_onnx(getattr(torchvision_models(), arch)(), torch.randn(1, 3, size, size), path, exporter)
