"""Frontends: read a model in some format and return an archlint Graph.

``load_graph`` picks the frontend from what it is given. The ONNX path never imports torch.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ModelLoadError
from ..graph import Graph
from .onnx_file import InputShapes

__all__ = ["load_graph"]


def load_graph(model: Any, input_shapes: InputShapes = None) -> Graph:
    """Graph of ``model``: a path to an ``.onnx`` file or an ``onnx.ModelProto``.

    Raises
    ------
    ModelLoadError
        The model cannot be read; the message names the file and the problem.
    """
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
                         "unsupported model type: give a path to an .onnx file or an onnx.ModelProto")
