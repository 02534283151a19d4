"""Quiet ONNX export of a PyTorch module with either torch exporter.

The one way the tests, the fixture builder and the benchmarks write ONNX files from PyTorch,
and a shortcut for plugin authors who test rules on their own models. torch is imported only
when a model is exported; archlint's ONNX path never imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .frontends.torch_quiet import quiet_torch

__all__ = ["EXPORTERS", "export_onnx"]

#: ``legacy``: the TorchScript-based exporter (opset 17 unless asked otherwise, weights embedded in
#: the file); ``dynamo``: the ``torch.export``-based one (its default opset, weights in ``FILE.data``).
EXPORTERS = ("legacy", "dynamo")


def export_onnx(module: Any, example_inputs: Any, path: str | os.PathLike, exporter: str = "dynamo", *,
                input_names: Sequence[str] | None = ("x",), opset: int | None = None, **kwargs: Any) -> Path:
    """Export ``module``, in eval mode, on ``example_inputs`` to the ONNX file ``path``, silently.

    Parameters
    ----------
    module : torch.nn.Module
        The model; it is switched to eval mode.
    example_inputs : Tensor or tuple of Tensor
        Inputs the exporter traces the model with.
    path : str or PathLike
        The file to write; the dynamo exporter writes the weights beside it, to ``PATH.data``
        (an older such file is removed first: the exporter would append to it).
    exporter : str
        One of :data:`EXPORTERS`.
    input_names : sequence of str, optional
        Names of the graph inputs (default ``x``); ``None`` keeps the exporter's own (``input.1``
        for the legacy exporter).
    opset : int, optional
        The ONNX opset to export to; default 17 for the legacy exporter, the dynamo exporter's own.
    **kwargs
        Passed to :func:`torch.onnx.export` (``dynamic_axes``, ``output_names``...).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        An unknown ``exporter``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    import torch

    from .frontends.torch_inputs import example_args

    args = example_args(example_inputs)
    if input_names is not None:
        kwargs["input_names"] = list(input_names)
    if opset is not None or exporter == "legacy":
        kwargs["opset_version"] = opset or 17
    path = Path(path)
    module.eval()
    with quiet_torch():
        if exporter == "legacy":
            torch.onnx.export(module, args, str(path), dynamo=False, **kwargs)
        else:
            Path(f"{path}.data").unlink(missing_ok=True)
            torch.onnx.export(module, args, str(path), dynamo=True, external_data=True, **kwargs)
    return path
