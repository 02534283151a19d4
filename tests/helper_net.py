"""A model built from a ConvBNAct helper, with flaws on purpose: its findings must name the
lines of ``HelperNet.__init__`` that build each block, not the helper's body.

74x74 input: ``stem`` 3x3/2 -> 37, ``reduce`` 1x1/2 -> 19 (reads 1 position in 4: AL201),
``valid`` 3x3 unpadded -> 17 (AL301; its line calls the helper, so no edit can be suggested),
``plain`` ``nn.Conv2d(32, 32, 3)`` -> 15 (AL301, edit ``padding=1``), ``pool`` 2x2/2 on 15 -> 7,
leaving row and column 14 unread (AL202, edit ``ceil_mode=True``).
"""

from __future__ import annotations

from torch import nn

INPUT = (1, 3, 74, 74)


class ConvBNAct(nn.Module):
    def __init__(self, c_in, c_out, k=3, s=1, p=None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class HelperNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2)
        self.reduce = ConvBNAct(16, 32, 1, 2)
        self.valid = ConvBNAct(32, 32, 3, 1, p=0)
        self.plain = nn.Conv2d(32, 32, 3)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.plain(self.valid(self.reduce(self.stem(x)))))
        return self.head(x.mean((2, 3)))


def build():
    """``pkg.module:factory`` entry point: the model and its input shape."""
    return HelperNet(), INPUT
