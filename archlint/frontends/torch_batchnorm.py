"""BatchNorm folding on the PyTorch path: a BatchNorm that is a conv's only consumer joins the conv.

Both ONNX exporters fold such a BatchNorm into the convolution; doing the same here makes
layer names, layer counts, MACs, receptive fields and findings agree with the ONNX path.
The folded BatchNorm's parameters (scale and shift) are counted on the convolution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableMapping
from typing import Any

from ..graph import Op

__all__ = ["fold_batchnorm"]


def fold_batchnorm(entries: MutableMapping[str, Any], outputs: list[str],
                   producer: MutableMapping[Any, tuple[str, int]]) -> tuple[list[str], int]:
    """Fold each BatchNorm entry that is the only consumer of a conv entry into it.

    ``entries`` are the converter's future layers by key (``op``, ``otype``, ``inputs``,
    ``params``, ``out_shape``, ``extra``, ``folded``), ``outputs`` the graph's output keys and
    ``producer`` the fx node -> (key, output index) map; all are updated so that nothing
    points at a folded entry. Returns the new outputs and the number of folded BatchNorms.
    """
    users: dict[str, int] = Counter()
    for entry in entries.values():
        for key, _ in entry.inputs:
            users[key] += 1
    for key in outputs:
        users[key] += 1
    folded = 0
    redirect: dict[str, str] = {}
    for entry in list(entries.values()):
        if entry.op is not Op.NORM or entry.otype != "BatchNormalization" or len(entry.inputs) != 1:
            continue
        prev_key, index = entry.inputs[0]
        prev_key = redirect.get(prev_key, prev_key)
        prev = entries.get(prev_key)
        if prev is None or prev.op is not Op.CONV or users[prev_key] != 1 or index != 0:
            continue
        prev.params = prev.params + entry.params
        prev.out_shape = entry.out_shape
        prev.extra["folded"] = entry.node.name
        entry.folded = True
        redirect[entry.key] = prev_key
        folded += 1
    if redirect:
        for entry in entries.values():
            entry.inputs = [(redirect.get(k, k), i) for k, i in entry.inputs]
        outputs = list(dict.fromkeys(redirect.get(k, k) for k in outputs))
        for node, (key, index) in list(producer.items()):
            if key in redirect:
                producer[node] = (redirect[key], index)
    return outputs, folded
