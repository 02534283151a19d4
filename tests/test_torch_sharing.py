"""Shared weights and input-independent values on the PyTorch path.

Independent counts: ``sum(p.numel() for p in model.parameters())`` (each tensor once) and
``FlopCounterMode`` on a real forward pass (FLOPs = 2 x MACs).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archlint

from conftest import import_torchvision


def counted_macs(model, *inputs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() // 2


class SharedConv(nn.Module):
    """One 3x3 conv applied three times (a recurrent refinement), plus a tied pair of linears."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.refine = nn.Conv2d(8, 8, 3, padding=1)
        self.encode = nn.Linear(8, 8, bias=False)
        self.decode = nn.Linear(8, 8, bias=False)
        self.decode.weight = self.encode.weight  # tied: one tensor, two modules

    def forward(self, x):
        x = self.stem(x)
        for _ in range(3):
            x = x + self.refine(x).relu()
        return self.decode(self.encode(x.mean((2, 3))))


class ConstantBranch(nn.Module):
    """A conv on the input plus a conv on a constant made in ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.a(x) + self.c(self.b(torch.zeros(1, 3, 32, 32)).relu())


def test_shared_conv_counts_its_parameters_once_in_the_total_and_per_use_on_each_layer():
    model = SharedConv().eval()
    x = torch.randn(1, 3, 32, 32)
    report = archlint.lint(model, example_inputs=x)
    assert report.summary.params == sum(p.numel() for p in model.parameters())
    per_use = [r.params for r in report.layers if r.name.startswith("refine")]
    assert per_use == [8 * 8 * 9 + 8] * 3
    assert report.summary.macs == counted_macs(model, x)
    note = next(n for n in report.summary.notes if "used more than once" in n)
    assert "refine x3" in note and "encode x2" in note


def test_conv_on_a_constant_is_counted_and_has_no_receptive_field():
    model = ConstantBranch().eval()
    x = torch.randn(1, 3, 32, 32)
    report = archlint.lint(model, example_inputs=x)
    assert report.summary.macs == counted_macs(model, x) == 2 * 32 * 32 * 8 * 27 + 32 * 32 * 8 * 8
    assert report.summary.params == sum(p.numel() for p in model.parameters())
    assert report.layer("b").receptive_field is None and report.layer("c").receptive_field is None
    # the constant branch sees no pixel: the sum keeps the input branch's 3x3 field
    total = next(r for r in report.layers if r.op == "add")
    assert tuple(total.receptive_field) == (3, 3) and tuple(total.effective_padding) == (1, 1)
    assert any("computed from constants alone" in n for n in report.summary.notes)


def test_raft_parameters_equal_the_module_and_macs_equal_flop_counter():
    """RAFT-small runs its update block 12 times on shared weights and builds its coordinate
    grids from constants; traced through torch.export (fx cannot follow its control flow)."""
    import_torchvision()
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    model = raft_small().eval()
    images = (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128))
    report = archlint.lint(model, example_inputs=images)
    assert report.summary.params == sum(p.numel() for p in model.parameters()) == 990_162
    assert report.summary.macs == counted_macs(model, *images)
