"""Frontends: read a model in some format and return an archlint Graph.

``load_graph`` picks the frontend from what it is given. The ONNX path never imports torch:
the PyTorch frontend (``torch_*`` modules) is imported only for a
``torch.nn.Module`` or ``torch.export.ExportedProgram``, a ``.pt2``/``.pt``/``.pth`` file,
or a ``pkg.module:factory`` reference. Every graph goes through the canonical pass
(:mod:`archlint.canonical`) before it is returned.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..canonical import canonical_graph
from ..errors import ModelLoadError
from ..graph import Graph

#: A bare shape for a single input, or input name -> shape.
InputShapes = Mapping[str, Sequence[int]] | Sequence[int] | None

__all__ = ["load_graph", "is_torch_reference"]

#: Suffixes read by the PyTorch frontend (torch.export archives, TorchScript, torch.save pickles).
TORCH_SUFFIXES = (".pt2", ".pt", ".pth", ".ptl", ".torchscript")
_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_torch_reference(model: Any) -> bool:
    """Whether ``model`` is handled by the PyTorch frontend (a torch object, file or factory)."""
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if isinstance(text, bytes):
            return False
        if text.lower().endswith(TORCH_SUFFIXES):
            return True
        return bool(_FACTORY.match(text)) and not os.path.exists(text)
    torch = sys.modules.get("torch")  # a torch object implies torch is imported already
    if torch is None:
        return False
    return isinstance(model, torch.nn.Module) or type(model).__name__ == "ExportedProgram"


def load_graph(model: Any, input_shapes: InputShapes = None, example_inputs: Any = None,
               unsafe_load_pickle: bool = False) -> Graph:
    """Canonical graph of ``model`` (:func:`archlint.canonical.canonical_graph` of its frontend's graph).

    Parameters
    ----------
    model
        A path to an ``.onnx`` file, an ``onnx.ModelProto``, a ``torch.nn.Module``, a
        ``torch.export.ExportedProgram``, a ``.pt2`` (torch.export) or TorchScript file, or a
        ``pkg.module:factory`` reference (imports ``pkg.module`` and calls ``factory()``:
        this runs that code, which is what the explicit reference asks for).
    input_shapes
        Pins input dimensions (a bare shape for one input, or a mapping by input name).
    example_inputs
        PyTorch only: a tensor or tuple of tensors whose shapes (not values) are used.
    unsafe_load_pickle
        PyTorch only: allow loading a full ``torch.save(model)`` pickle, which runs
        arbitrary code from the file. Off by default.

    Raises
    ------
    ModelLoadError
        The model cannot be read; the message names the file and the problem.
    """
    return canonical_graph(_frontend_graph(model, input_shapes, example_inputs, unsafe_load_pickle))


def _frontend_graph(model: Any, input_shapes: InputShapes, example_inputs: Any, unsafe_load_pickle: bool) -> Graph:
    """The graph as the model's frontend builds it, before the canonical pass."""
    if is_torch_reference(model):
        from .torch_files import load_torch

        return load_torch(model, input_shapes=input_shapes, example_inputs=example_inputs,
                          unsafe_load_pickle=unsafe_load_pickle)
    if example_inputs is not None:
        raise ModelLoadError(_describe(model), "example_inputs applies to PyTorch models only; "
                                               "use input_shapes for ONNX")
    from .onnx_file import load_onnx, prepare_onnx
    from .onnx_graph import onnx_graph

    if isinstance(model, (str, os.PathLike)):
        return onnx_graph(load_onnx(model, input_shapes))
    import onnx

    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return onnx_graph(prepare_onnx(copy, f"<onnx.ModelProto {model.graph.name or 'graph'}>", input_shapes))
    raise ModelLoadError(repr(type(model).__name__),
                         "unsupported model type: give a path to an .onnx, .pt2 or TorchScript file, "
                         "an onnx.ModelProto, a torch.nn.Module or a pkg.module:factory reference")


def _describe(model: Any) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else f"<{type(model).__name__}>"
