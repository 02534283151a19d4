"""Models that cannot be traced whole (detectors), linted part by part.

Independent counts: FlopCounterMode on the covered submodules run eagerly on the inputs they
received in the model's own forward pass, and ``sum(p.numel())`` of those submodules.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archlint

from conftest import import_torchvision

_NMS_LIBRARY = []  # keeps the CPU kernel registration alive for the session


def _nms(boxes, scores, iou_threshold: float):
    """Greedy non-maximum suppression (the algorithm of torchvision.ops.nms), in plain torch:
    the CPU wheel of torchvision here cannot load its C++ kernel."""
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        best = order[0]
        keep.append(best)
        rest = order[1:]
        lt = torch.maximum(boxes[best, :2], boxes[rest, :2])
        rb = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = inter / (area(boxes[best]) + area(boxes[rest]) - inter)
        order = rest[iou <= iou_threshold]
    return torch.stack(keep) if keep else torch.empty(0, dtype=torch.long)


@pytest.fixture(scope="module")
def faster_rcnn():
    """torchvision Faster R-CNN MobileNetV3-Large-320-FPN (random weights) and one 320x320 image, with
    a CPU kernel for torchvision::nms (torchvision checks for its C++ ops before calling it)."""
    tv = import_torchvision()
    import torchvision.extension

    if not _NMS_LIBRARY:
        library = torch.library.Library("torchvision", "IMPL", "CPU")
        library.impl("nms", _nms)
        _NMS_LIBRARY.append(library)
    has_ops = torchvision.extension._has_ops
    torchvision.extension._has_ops = lambda: True
    torch.manual_seed(0)
    model = tv.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None).eval()
    yield model, [torch.rand(3, 320, 320)]
    torchvision.extension._has_ops = has_ops


def _eager_counts(model, images, paths):
    """FlopCounterMode MACs per covered module, counted on the model's own forward pass."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    return {path: sum(counts.get(f"{root}.{path}", {}).values()) // 2 for path in paths}


def test_detector_list_input_is_linted_part_by_part_with_exact_macs(faster_rcnn):
    model, images = faster_rcnn
    report = archlint.lint(model, example_inputs=(images,))
    notes = report.summary.notes
    covered = next(n for n in notes if n.startswith("linted part by part")).rsplit(": ", 1)[1].split(", ")
    assert {"backbone", "rpn.head", "roi_heads.box_head"} <= set(covered)
    expected = _eager_counts(model, images, covered)
    assert report.summary.macs == sum(expected.values()) and expected["backbone"] > 0
    assert report.summary.params == sum(p.numel() for path in covered
                                        for p in model.get_submodule(path).parameters())
    left_out = next(n for n in notes if n.startswith("not covered")).rsplit(": ", 1)[1].split(", ")
    assert {"transform", "rpn.anchor_generator", "roi_heads.box_roi_pool"} <= set(left_out)
    # the RPN head reads the very feature maps the backbone made: one connected graph
    head = [r for r in report.layers if r.name.startswith("rpn.head")]
    assert head and not any(r.name.startswith("rpn.head.input") for r in report.layers)


def test_detector_tensor_input_falls_back_to_parts_without_torch_dumps_on_stderr(faster_rcnn, capfd):
    model, images = faster_rcnn
    stderr = sys.stderr
    report = archlint.lint(model, example_inputs=images[0][None])
    # torch.export prints the whole partial graph to stderr when it fails; none of it gets out
    assert capfd.readouterr().err == "" and sys.stderr is stderr
    assert any(n.startswith("linted part by part") for n in report.summary.notes)
    assert report.layer("backbone.body.0.0").op == "conv"
