"""Shape arithmetic of windowed layers, and a consistency check of the shapes a frontend read.

Frontends take shapes from their format (ONNX shape inference, torch meta tensors);
this module recomputes what can be recomputed from normalized attributes and rejects
graphs whose layers disagree with themselves (channel mismatches, impossible sizes),
which ONNX shape inference lets through silently.
"""

from __future__ import annotations

import math
from functools import lru_cache

from ..errors import ShapeError
from ..formatting import format_dims
from ..graph import Graph, Layer, Op

__all__ = ["window_output_size", "transposed_output_size", "check_shapes", "spatial_dims", "spans_whole_axis",
           "whole_map_window", "single_window_over_map", "one_window_over_axis"]

_WINDOWED = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.MAX_POOL, Op.AVG_POOL})
_MATRIX_PRODUCTS = frozenset({Op.LINEAR, Op.MATMUL})
#: Source ops that lay their input out anew: their output holds exactly the input's elements.
_RELAYOUTS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
_REARRANGING = frozenset({Op.RESHAPE, Op.FLATTEN})
_SHAPE_DEPENDENT = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.MAX_POOL, Op.AVG_POOL, Op.GLOBAL_POOL,
                              Op.LINEAR, Op.MATMUL, Op.INPUT})


def window_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                       dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a sliding window (convolution or pooling) along one axis.

    Examples
    --------
    >>> window_output_size(224, 7, 2, 3, 3)
    112
    >>> window_output_size(112, 3, 2, 1, 1)
    56
    >>> window_output_size(6, 3, 2, 0, 0, ceil_mode=True)
    3
    """
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1  # the last window must start inside the input or its begin padding
    return out


def transposed_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                           dilation: int = 1) -> int:
    """Output length of a transposed convolution (without output_padding)."""
    return (size - 1) * stride - pad_begin - pad_end + dilation * (kernel - 1) + 1


def spans_whole_axis(size: int, kernel: int, dilation: int = 1, padding: int = 0) -> bool:
    """Whether one unpadded, undilated window covers all ``size`` positions of an axis (``size > 1``).

    Such a window is not a sliding window that shrinks the map but a dense layer over that
    axis: its single output reads every position, each with its own weights.

    Examples
    --------
    >>> spans_whole_axis(7, 7), spans_whole_axis(7, 3), spans_whole_axis(7, 7, padding=2), spans_whole_axis(1, 1)
    (True, False, False, False)
    """
    return size > 1 and kernel == size and dilation == 1 and padding == 0


def whole_map_window(layer: Layer) -> bool:
    """Whether a conv or pooling layer reads its whole input map in one unpadded window on every axis.

    A 7x7 conv without padding on a 7x7 map (VGG's fully-connected layer written as a conv)
    is a dense layer on that map; a 7x7 average pool on it is global pooling.
    """
    x = layer.input_shapes[0] if layer.op in _WINDOWED and layer.input_shapes else None
    sizes = spatial_dims(x)
    rank = len(layer.kernel)
    if not rank or len(sizes) != rank or sizes != tuple(layer.kernel):
        return False  # the usual answer, at once: a window smaller than its map on some axis
    dilation = layer.dilation or (1,) * rank
    pads = tuple(b + e for b, e in zip(layer.pads_begin or (0,) * rank, layer.pads_end or (0,) * rank))
    return len(dilation) == len(pads) == rank and any(n > 1 for n in sizes) and all(
        spans_whole_axis(n, k, d, p) or (n == k == 1 and p == 0)
        for n, k, d, p in zip(sizes, layer.kernel, dilation, pads))


def one_window_over_axis(size: int, out: int, kernel: int, dilation: int = 1, pad_begin: int = 0) -> bool:
    """Whether a window gives one output along an axis of ``size > 1`` positions and reads all of them.

    Such an axis is not shrunk by a sliding window but read whole, as by global pooling or a
    dense layer; end padding past the map (Caffe's ceil-mode pools converted to ONNX) does not change that.

    Examples
    --------
    >>> one_window_over_axis(7, 1, 7), one_window_over_axis(6, 1, 7, pad_begin=0), one_window_over_axis(7, 1, 3)
    (True, True, False)
    """
    return size > 1 and out == 1 and dilation == 1 and kernel >= size + pad_begin


def single_window_over_map(layer: Layer) -> bool:
    """Whether a conv or pooling layer has one output position, whose window reads every input position.

    Global pooling written as a window: ResNet's 7x7 average pool on its 7x7 map as Caffe2
    wrote it, or a 7x7 pool with one row and column of end padding on a 6x6 map (Caffe's
    ceil-mode pooling converted to explicit padding). Unlike :func:`whole_map_window`,
    padding is allowed, as long as the single window still reads the whole map.

    Examples
    --------
    >>> from archlint.graph import Layer, Op
    >>> def pool(n, k, end_pad=0):
    ...     return Layer("p", Op.AVG_POOL, "AveragePool", (1, 8, 1, 1), ((1, 8, n, n),), kernel=(k, k),
    ...                  stride=(1, 1), pads_begin=(0, 0), pads_end=(end_pad, end_pad), dilation=(1, 1))
    >>> single_window_over_map(pool(7, 7)), single_window_over_map(pool(6, 7, end_pad=1)), single_window_over_map(pool(1, 1))
    (True, True, False)
    """
    if layer.op not in (Op.CONV, Op.MAX_POOL, Op.AVG_POOL) or not layer.input_shapes:
        return False
    sizes, out = spatial_dims(layer.input_shapes[0]), spatial_dims(layer.output_shape)
    rank = len(layer.kernel)
    if not rank or len(sizes) != rank or out != (1,) * rank or all(n == 1 for n in sizes):
        return False
    dilation = layer.dilation or (1,) * rank
    begins = layer.pads_begin or (0,) * rank
    return all((n == 1 and p % d == 0 and p <= d * (k - 1)) or one_window_over_axis(n, 1, k, d, p)
               for n, k, d, p in zip(sizes, layer.kernel, dilation, begins))


def spatial_dims(shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Spatial sizes of an ``N, C, *spatial`` tensor; empty for vectors or unknown shapes."""
    return tuple(shape[2:]) if shape and len(shape) >= 3 else ()


def _unknown_shape_cause(graph: Graph, name: str) -> str:
    """The first layer upstream of ``name`` whose output shape is unknown but inputs known."""
    current = name
    while True:
        unknown = [p for p in graph.inputs_of(current) if graph.layer(p).output_shape is None]
        if not unknown:
            return current
        current = unknown[0]


def check_shapes(graph: Graph) -> list[str]:
    """Check the shapes of every layer; return the names of layers whose shape is unknown.

    Layers whose numbers depend on their shapes (convolutions, pooling, dense layers and
    matrix products) must have known, consistent shapes, else :class:`ShapeError` is raised.
    Other layers may have unknown shapes (data-dependent sizes after NonMaxSuppression,
    say); they are returned so the report can say that their operation counts are missing.

    Examples
    --------
    A conv whose input has 4 channels but whose weight expects 3 is rejected:

    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph(model="m.onnx")
    >>> g.add_node("c", layer=Layer("c", Op.CONV, "Conv", (1, 8, 4, 4), ((1, 4, 4, 4),), kernel=(1, 1),
    ...     stride=(1, 1), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1), in_channels=3, out_channels=8))
    >>> check_shapes(g)
    Traceback (most recent call last):
    ...
    archlint.errors.ShapeError: m.onnx: layer 'c' (Conv): input has 4 channels, its weight expects 3
    """
    unknown = []
    for layer in graph.layers():
        needs_shape = layer.op in _SHAPE_DEPENDENT
        if layer.output_shape is None:
            if not needs_shape:
                unknown.append(layer.name)
                continue
            cause = graph.layer(_unknown_shape_cause(graph, layer.name))
            if cause.op is Op.INPUT:
                hint = "pin dynamic inputs with --input-shape"
            elif cause.op is Op.OTHER:
                hint = (f"archlint cannot infer the output shape of '{cause.name}' ({cause.source_op}); "
                        "record it in the model's value_info")
            else:  # the inputs are pinned by now: an argument computed in the graph is what is unknown
                hint = (f"shape inference cannot compute it from the shapes of its inputs (a weight or shape "
                        f"argument computed at run time); record the output shape of '{cause.name}' in the "
                        "model's value_info")
            raise ShapeError(graph.model, f"the output shape of layer '{layer.name}' ({layer.source_op}) "
                                          f"is unknown, starting at '{cause.name}' ({cause.source_op}); {hint}")
        if layer.output_shape and min(layer.output_shape) < 0:  # min's default= costs twice the test
            raise ShapeError(graph.model, f"layer '{layer.name}' has a negative dimension {list(layer.output_shape)}")
        if layer.op in _WINDOWED:
            _check_window(graph, layer)
        elif layer.op in _REARRANGING:
            _check_elements(graph, layer)
        if layer.op in _MATRIX_PRODUCTS and layer.in_channels is None:
            raise ShapeError(graph.model, f"layer '{layer.name}' ({layer.source_op}): input shape unknown")
    return unknown


def _check_elements(graph: Graph, layer: Layer) -> None:
    """A reshape keeps its input's elements: a target fixed in the file for another input size does not
    (BVLC AlexNet's Reshape to 1x9216 given a 256x256 image), and inference lets that through."""
    x, out = layer.input_shapes[0] if layer.input_shapes else None, layer.output_shape
    if x is None or layer.source_op.rpartition("::")[2] not in _RELAYOUTS:
        return
    have, made = math.prod(x), math.prod(out)
    if have != made:
        raise ShapeError(graph.model, f"layer '{layer.name}' ({layer.source_op}) lays out {format_dims(x)} "
                                      f"({have:,} elements) as {format_dims(out)} ({made:,}); a shape fixed "
                                      "in the file does not fit this input size")


def _mismatched_axis(op: Op, sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                     pads_begin: tuple[int, ...], pads_end: tuple[int, ...], dilation: tuple[int, ...],
                     ceil_mode: bool, out: tuple[int, ...]) -> int | None:
    """The first spatial axis whose output size does not follow from the window, or ``None``."""
    for axis, (args, got) in enumerate(zip(zip(sizes, kernel, stride, pads_begin, pads_end, dilation), out)):
        if op is Op.CONV_TRANSPOSE:
            low = transposed_output_size(*args)
            ok = low <= got < low + args[2] + args[5]
        else:
            expected = window_output_size(*args, ceil_mode=ceil_mode)
            ok = expected == got and expected > 0
        if not ok:
            return axis
    return None


def _check_window(graph: Graph, layer: Layer) -> None:
    x = layer.input_shapes[0] if layer.input_shapes else None
    window = (layer.op, x, layer.output_shape, layer.kernel, layer.stride, layer.pads_begin, layer.pads_end,
              layer.dilation, layer.ceil_mode, layer.in_channels, layer.out_channels, layer.groups)
    try:
        valid = _valid_window(*window)
    except TypeError:  # an attribute that is not hashable: checked below, without the cache
        valid = False
    if not valid:
        problem = _window_problem(*window)
        if problem is not None:
            raise ShapeError(graph.model, f"layer '{layer.name}' ({layer.source_op}): {problem}")


@lru_cache(maxsize=4096)
def _valid_window(*window) -> bool:
    """Whether a window configuration passes :func:`_window_problem`.

    Cached: models repeat a few window configurations many times. Only the answer is kept;
    the message of a failing configuration is written from the layer itself.
    """
    return _window_problem(*window) is None


def _window_problem(op: Op, x, out, kernel, stride, pads_begin, pads_end, dilation, ceil_mode,
                    in_channels, out_channels, groups) -> str | None:
    """What is wrong with a conv or pooling layer of these attributes, or ``None``."""
    if x is None:
        return "input shape unknown"
    if len(x) != len(kernel) + 2:
        return f"input of rank {len(x)} does not match a {len(kernel)}-D kernel"
    if op in (Op.CONV, Op.CONV_TRANSPOSE):
        if in_channels != x[1]:
            return f"input has {x[1]} channels, its weight expects {in_channels}"
        if in_channels % groups or out_channels % groups:
            return f"channels {in_channels}->{out_channels} are not divisible by groups={groups}"
        if out[1] != out_channels:
            return f"output has {out[1]} channels, its weight gives {out_channels}"
    if min(kernel, default=1) < 1 or min(stride, default=1) < 1:
        return f"kernel {kernel} and stride {stride} must be >= 1"
    if min(pads_begin + pads_end, default=0) < 0:
        return f"negative padding {pads_begin}/{pads_end}"
    axis = _mismatched_axis(op, tuple(x[2:]), tuple(kernel), tuple(stride), tuple(pads_begin), tuple(pads_end),
                            tuple(dilation), bool(ceil_mode), tuple(out[2:]))
    if axis is not None:
        return (f"output size {out[2 + axis]} on spatial axis {axis} does not follow from input {x[2 + axis]}, "
                f"kernel {kernel[axis]}, stride {stride[axis]}, padding {pads_begin[axis]}+{pads_end[axis]}")
    if not all(out):
        return f"empty output {list(out)}"
    return None
