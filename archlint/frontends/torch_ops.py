"""The PyTorch frontend's op tables: an fx node or leaf module -> (canonical op, ONNX op type, fields).

Functions and ATen operators map by name (``F.conv2d`` and ``aten.conv2d`` share a table),
leaf modules by type. The ONNX op type is the one the ONNX exporters would emit; it names
layers (``scope/OpType``) the way the ONNX frontend does. Fields are normalized the ONNX
way (per-axis kernel, stride, dilation, begin and end pads, channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx
from torch import nn

from ..graph import Op, reduction_op
from .einsum import einsum_contraction

__all__ = ["OpSpecs", "ONNX_TYPE", "ALIASES", "IGNORED_MODULE_TYPES", "target_name", "function_name",
           "int_tuple", "shape_of", "argument", "flatten_args", "recurrent_layers", "recurrent_call_layers"]

#: ONNX op type used in ``scope/OpType`` names, per canonical op (when no finer type is known).
ONNX_TYPE = {Op.CONV: "Conv", Op.CONV_TRANSPOSE: "ConvTranspose", Op.MAX_POOL: "MaxPool",
             Op.AVG_POOL: "AveragePool", Op.GLOBAL_POOL: "GlobalAveragePool", Op.LINEAR: "Gemm",
             Op.MATMUL: "MatMul", Op.ADD: "Add", Op.MUL: "Mul", Op.CONCAT: "Concat",
             Op.ACTIVATION: "Relu", Op.NORM: "BatchNormalization", Op.RESHAPE: "Reshape",
             Op.FLATTEN: "Flatten", Op.RESIZE: "Resize", Op.PAD: "Pad", Op.SLICE: "Slice", Op.OTHER: "Other"}

_ACTIVATION_TYPES = {
    "relu": "Relu", "relu6": "Clip", "hardtanh": "Clip", "clamp": "Clip", "clip": "Clip",
    "clamp_min": "Relu", "leaky_relu": "LeakyRelu", "prelu": "PRelu", "elu": "Elu", "selu": "Selu",
    "celu": "Celu", "gelu": "Gelu", "silu": "Sigmoid", "mish": "Mish", "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
    "log_softmax": "LogSoftmax", "softplus": "Softplus", "softsign": "Softsign", "threshold": "Relu",
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "rsqrt": "Sqrt", "abs": "Abs", "neg": "Neg", "erf": "Erf",
    "floor": "Floor", "ceil": "Ceil", "round": "Round", "sign": "Sign", "reciprocal": "Reciprocal",
    "sin": "Sin", "cos": "Cos", "square": "Mul", "logsigmoid": "Sigmoid", "tanhshrink": "Tanh",
    "softmin": "Softmax", "rrelu": "LeakyRelu", "glu": "Sigmoid", "hardshrink": "Shrink",
    "softshrink": "Shrink", "_softmax": "Softmax", "_safe_softmax": "Softmax", "_log_softmax": "LogSoftmax",
}
_ADD_TYPES = {"add": "Add", "sub": "Sub", "rsub": "Sub", "iadd": "Add", "isub": "Sub", "radd": "Add"}
_MUL_TYPES = {"mul": "Mul", "imul": "Mul", "rmul": "Mul", "div": "Div", "truediv": "Div", "itruediv": "Div",
              "floordiv": "Div", "floor_divide": "Div", "true_divide": "Div", "pow": "Pow", "maximum": "Max",
              "minimum": "Min", "max": "Max", "min": "Min", "addcmul": "Mul", "rtruediv": "Div"}
_NORM_FUNCS = {"batch_norm", "group_norm", "layer_norm", "instance_norm", "local_response_norm",
               "normalize", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
               "native_batch_norm", "native_layer_norm", "native_group_norm", "rms_norm"}
#: PyTorch padding modes -> ONNX Pad modes.
_PAD_MODES = {"replicate": "edge", "circular": "wrap"}
#: Functions that return their input (or a copy of it): no layer.
ALIASES = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
           "feature_dropout", "contiguous", "clone", "detach", "to", "float", "type", "type_as", "identity",
           "lift_fresh_copy", "alias", "requires_grad", "cpu", "cuda", "half", "double", "bfloat16",
           "stochastic_depth", "drop_path", "drop_block2d", "drop_block3d"}
_RESHAPES = {"view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "expand", "expand_as", "repeat",
             "unflatten", "view_as", "reshape_as", "tile", "channel_shuffle", "broadcast_to"}
_TRANSPOSES = {"permute", "transpose", "t", "swapaxes", "swapdims", "movedim", "numpy_T"}
_SPLITS = {"split", "chunk", "unbind", "split_with_sizes", "tensor_split", "unsafe_split"}
_SLICES = {"getitem", "slice", "narrow", "select", "index_select"}
#: Leaf modules that return their input: no layer.
IGNORED_MODULE_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                        nn.FeatureAlphaDropout, nn.Identity)


#: Recurrent modules -> (ONNX op type, gates per cell).
_RECURRENT = {nn.LSTM: ("LSTM", 4), nn.GRU: ("GRU", 3), nn.RNN: ("RNN", 1)}


def recurrent_layers(m: nn.Module, x: tuple[int, ...] | None) -> list[tuple[str, dict, list[str]]] | None:
    """An ``nn.LSTM``/``nn.GRU``/``nn.RNN`` read on a sequence ``x`` (batched, or unbatched as
    ``(steps, features)``) as one recurrent layer per stacked layer, as the ONNX exporters emit
    one node per layer: per layer its ONNX op type, its fields and the names of the parameters
    it uses.

    ``None`` where the module is not counted this way (an LSTM with projections, a packed
    sequence, a subclass with its own ``forward``): the converter then opens it.
    """
    if type(m) not in _RECURRENT or getattr(m, "proj_size", 0) or not x or len(x) not in (2, 3):
        return None
    otype, gates = _RECURRENT[type(m)]
    directions = 2 if m.bidirectional else 1
    layers = []
    for k in range(m.num_layers):
        size = m.input_size if k == 0 else m.hidden_size * directions
        suffixes = [f"_l{k}", f"_l{k}_reverse"][:directions]
        names = [f"{kind}{suffix}" for suffix in suffixes for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                 if getattr(m, f"{kind}{suffix}", None) is not None]
        layers.append((otype, dict(in_channels=size, out_channels=m.hidden_size, gates=gates,
                                   directions=directions), names))
    return layers


#: ATen recurrent operators (what ``nn.LSTM``/``nn.GRU``/``nn.RNN`` become in a ``torch.export``
#: program) -> (ONNX op type, gates per cell).
_RECURRENT_ATEN = {"lstm": ("LSTM", 4), "gru": ("GRU", 3), "rnn_tanh": ("RNN", 1), "rnn_relu": ("RNN", 1)}


def recurrent_call_layers(node: fx.Node, values: dict) -> list[tuple[str, dict, list]] | None:
    """An ATen ``lstm``/``gru``/``rnn_tanh``/``rnn_relu`` call on a batched sequence read as
    :func:`recurrent_layers` reads the module: per stacked layer its ONNX op type, its fields
    and the argument nodes of the parameters it uses (input and hidden weights, then biases,
    per direction).

    ``None`` where the call is not counted this way (a packed or unbatched sequence, an LSTM
    with projections): the converter then opens it into its matrix products.
    """
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload) \
            or target._overloadname != "input" or target_name(node) not in _RECURRENT_ATEN:
        return None
    otype, gates = _RECURRENT_ATEN[target_name(node)]
    x = shape_of(values.get(node.args[0]))
    params, has_biases, num_layers, bidirectional = node.args[2], node.args[3], node.args[4], node.args[7]
    directions = 2 if bidirectional else 1
    per_direction = 4 if has_biases else 2
    shapes = [shape_of(values.get(p)) for p in params]
    if not x or len(x) != 3 or len(params) != num_layers * directions * per_direction \
            or any(s is None or len(s) != (2 if i % per_direction < 2 else 1) for i, s in enumerate(shapes)):
        return None
    layers = []
    for k in range(num_layers):
        first = k * directions * per_direction
        w_ih, w_hh = shapes[first], shapes[first + 1]
        hidden = w_hh[1]
        if w_hh[0] != gates * hidden or w_ih[0] != gates * hidden:  # projections: another hidden size
            return None
        layers.append((otype, dict(in_channels=w_ih[1], out_channels=hidden, gates=gates, directions=directions),
                       list(params[first:first + directions * per_direction])))
    return layers


def target_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    if isinstance(target, torch._ops.OpOverloadPacket):
        return str(target).split(".")[-1]
    return getattr(target, "__name__", str(target))


def function_name(node: fx.Node) -> str:
    """Normalized function name: ``relu_`` -> ``relu``, ``__add__`` -> ``add``."""
    name = target_name(node)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name in ("iadd", "isub", "imul", "itruediv"):
            name = name[1:]
    elif name.endswith("_") and not name.startswith("_"):
        name = name[:-1]
    return name


def int_tuple(value, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        values = tuple(int(v) for v in value)
        if len(values) == 1 and n > 1:
            return values * n
        return values
    return (int(value),) * n


def shape_of(value) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        try:
            return tuple(int(d) for d in value.shape)
        except Exception:  # symbolic sizes
            return None
    return None


def argument(node: fx.Node, index: int, names: Sequence[str] | str, default=None):
    names = (names,) if isinstance(names, str) else names
    if index is not None and index < len(node.args):
        return node.args[index]
    for name in names:
        if name in node.kwargs:
            return node.kwargs[name]
    return default


def flatten_args(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from flatten_args(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from flatten_args(item)
    elif isinstance(value, slice):
        yield from flatten_args((value.start, value.stop, value.step))
    else:
        yield value


class OpSpecs:
    """Maps fx nodes to (op, ONNX op type, fields), given the traced ``values`` and the
    ``producer`` of each activation (the converter's, shared and filled as it goes)."""

    def __init__(self, values: dict, producer: dict) -> None:
        self.values = values
        self.producer = producer

    def value_shape(self, node: fx.Node):
        value = self.values.get(node)
        if isinstance(value, (tuple, list)):
            index = self.producer[node][1]
            value = value[index] if index < len(value) else None
        return shape_of(value)

    # -- op mapping ------------------------------------------------------------------------

    def _x(self, data):
        return self.value_shape(data[0]) if data else None

    def module_spec(self, node, m: nn.Module, data) -> tuple[Op, str, dict]:
        x = self._x(data)
        if isinstance(m, nn.modules.conv._ConvNd):
            transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
            op, otype, fields = self._conv(x, tuple(m.weight.shape), m.stride, m.padding, m.dilation, m.groups,
                                           transposed)
            if m.padding_mode != "zeros" and any(fields["pads_begin"] + fields["pads_end"]):
                fields["mode"] = _PAD_MODES.get(m.padding_mode, m.padding_mode)  # as a folded Pad's mode
            return op, otype, fields
        if isinstance(m, nn.Linear):
            return Op.LINEAR, "Gemm", dict(in_channels=m.in_features, out_channels=m.out_features)
        if isinstance(m, nn.modules.pooling._MaxPoolNd):
            return self._pool(Op.MAX_POOL, x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        if isinstance(m, nn.modules.pooling._AvgPoolNd) and hasattr(m, "kernel_size"):
            return self._pool(Op.AVG_POOL, x, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode)
        if isinstance(m, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
            kind = Op.MAX_POOL if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd) else Op.AVG_POOL
            return self._adaptive(kind, x, m.output_size)
        if isinstance(m, nn.modules.batchnorm._NormBase) or isinstance(
                m, (nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)):
            otype = {"GroupNorm": "GroupNormalization", "LayerNorm": "LayerNormalization"}.get(
                type(m).__name__, "InstanceNormalization" if "Instance" in type(m).__name__ else "BatchNormalization")
            return Op.NORM, otype, {}
        if isinstance(m, nn.Flatten):
            out = shape_of(self.values.get(node))
            return (Op.FLATTEN, "Flatten", {}) if out is not None and len(out) <= 2 else (Op.RESHAPE, "Reshape", {})
        if isinstance(m, (nn.Unflatten, nn.ChannelShuffle)):
            return Op.RESHAPE, "Reshape", {}
        if isinstance(m, nn.Upsample):
            mode = m.mode
            return self._resize(node, x, mode, m.align_corners)
        if isinstance(m, nn.modules.padding._ConstantPadNd) or isinstance(
                m, (nn.modules.padding._ReflectionPadNd, nn.modules.padding._ReplicationPadNd)):
            mode = ("reflect" if isinstance(m, nn.modules.padding._ReflectionPadNd)
                    else "edge" if isinstance(m, nn.modules.padding._ReplicationPadNd) else "constant")
            return self._pad(x, m.padding, mode)
        if isinstance(m, nn.Softmax2d):
            return Op.ACTIVATION, "Softmax", {}
        if type(m).__module__.startswith("torch.nn.modules.activation") and not isinstance(m, nn.MultiheadAttention):
            name = type(m).__name__.lower()
            return Op.ACTIVATION, _ACTIVATION_TYPES.get(name, type(m).__name__), {}
        return Op.OTHER, type(m).__name__, {}

    def function_spec(self, node, name: str, data) -> tuple[Op, str, dict]:
        x = self._x(data)
        val = lambda a: self.values.get(a) if isinstance(a, fx.Node) else a  # noqa: E731
        if name in ("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                    "conv_transpose2d", "conv_transpose3d"):
            w = shape_of(val(argument(node, 1, "weight")))
            if w is None:
                return Op.OTHER, "Conv", {}
            transposed = name.startswith("conv_transpose") or (
                name in ("convolution", "_convolution") and bool(argument(node, 6, "transposed", False)))
            stride = argument(node, 3, "stride", 1)
            padding = argument(node, 4, "padding", 0)
            if name.startswith("conv_transpose"):
                dilation, groups = argument(node, 7, "dilation", 1), argument(node, 6, "groups", 1)
            elif name in ("convolution", "_convolution"):
                dilation, groups = argument(node, 5, "dilation", 1), argument(node, 8, "groups", 1)
            else:
                dilation, groups = argument(node, 5, "dilation", 1), argument(node, 6, "groups", 1)
            return self._conv(x, w, stride, padding, dilation, groups, transposed)
        if name == "einsum":
            equation, operands = (node.args[0] if node.args else None), list(node.args[1:])
            if len(operands) == 1 and isinstance(operands[0], (list, tuple)):  # einsum(eq, [a, b])
                operands = list(operands[0])
            k = (einsum_contraction(equation, [shape_of(val(o)) for o in operands])
                 if isinstance(equation, str) else None)
            out = shape_of(self.values.get(node))
            if k is not None:
                return Op.MATMUL, "Einsum", dict(in_channels=k, out_channels=out[-1] if out else None)
            return Op.OTHER, "einsum", {}
        if name in ("linear", "matmul", "mm", "bmm", "addmm", "baddbmm"):
            operands = [argument(node, 0, ("input", "self")), argument(node, 1, ("weight", "other", "mat2"))]
            if name == "addmm":
                operands = [argument(node, 1, "mat1"), argument(node, 2, "mat2")]
            elif name == "baddbmm":
                operands = [argument(node, 1, "batch1"), argument(node, 2, "batch2")]
            has_weight = any(isinstance(o, fx.Node) and o not in self.producer for o in operands)
            first = shape_of(val(operands[0]))
            out = shape_of(self.values.get(node))
            k = first[-1] if first else None
            return (Op.LINEAR if has_weight else Op.MATMUL, "Gemm" if name == "linear" else "MatMul",
                    dict(in_channels=k, out_channels=out[-1] if out else None))
        pools = {"max_pool1d": Op.MAX_POOL, "max_pool2d": Op.MAX_POOL, "max_pool3d": Op.MAX_POOL,
                 "max_pool1d_with_indices": Op.MAX_POOL, "max_pool2d_with_indices": Op.MAX_POOL,
                 "max_pool3d_with_indices": Op.MAX_POOL, "avg_pool1d": Op.AVG_POOL, "avg_pool2d": Op.AVG_POOL,
                 "avg_pool3d": Op.AVG_POOL}
        if name in pools:
            kernel = argument(node, 1, "kernel_size")
            stride = argument(node, 2, "stride", None)
            padding = argument(node, 3, "padding", 0)
            if pools[name] is Op.MAX_POOL:
                dilation, ceil = argument(node, 4, "dilation", 1), argument(node, 5, "ceil_mode", False)
            else:
                dilation, ceil = 1, argument(node, 4, "ceil_mode", False)
            return self._pool(pools[name], x, kernel, stride, padding, dilation, ceil)
        if name.startswith(("adaptive_avg_pool", "_adaptive_avg_pool", "adaptive_max_pool")):
            kind = Op.MAX_POOL if "max" in name else Op.AVG_POOL
            return self._adaptive(kind, x, argument(node, 1, "output_size"))
        if name in ("mean", "amax", "sum", "max", "amin") and x and argument(node, 1, "dim") is not None:
            dims = argument(node, 1, "dim")
            kind = reduction_op(len(x), [d % len(x) for d in ([dims] if isinstance(dims, int) else dims)])
            otype = {"mean": "ReduceMean", "sum": "ReduceSum", "amin": "ReduceMin"}.get(name, "ReduceMax")
            if kind is Op.GLOBAL_POOL:
                return Op.GLOBAL_POOL, otype, dict(in_channels=x[1], out_channels=x[1])
            if kind is Op.NORM:
                return Op.NORM, otype, {}
            if name != "max":
                return Op.OTHER, name, {}
        if name in _ADD_TYPES:
            return Op.ADD, _ADD_TYPES[name], {}
        if name in _MUL_TYPES and not (name in ("max", "min") and len(data) < 2):
            return Op.MUL, _MUL_TYPES[name], {}
        if name in ("cat", "concat", "concatenate", "stack", "hstack", "vstack"):
            return Op.CONCAT, "Concat", {}
        if name in _ACTIVATION_TYPES:
            return Op.ACTIVATION, _ACTIVATION_TYPES[name], {}
        if name in _NORM_FUNCS:
            otype = {"group_norm": "GroupNormalization", "layer_norm": "LayerNormalization",
                     "native_layer_norm": "LayerNormalization", "instance_norm": "InstanceNormalization",
                     "native_group_norm": "GroupNormalization"}.get(name, "BatchNormalization")
            return Op.NORM, otype, {}
        if name == "flatten":
            out = shape_of(self.values.get(node))
            return (Op.FLATTEN, "Flatten", {}) if out is not None and len(out) <= 2 else (Op.RESHAPE, "Reshape", {})
        if name in _RESHAPES:
            return Op.RESHAPE, "Reshape" if name not in ("unsqueeze", "squeeze") else name.capitalize(), {}
        if name in _TRANSPOSES:
            return Op.RESHAPE, "Transpose", self._perm(node, name, x)
        if name in ("interpolate", "upsample") or name.startswith(("upsample_", "_upsample_")):
            return self._resize_function(node, name, x)
        if name in ("pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
                    "replication_pad1d", "replication_pad2d", "replication_pad3d"):
            mode = argument(node, 2, "mode", "constant") if name == "pad" else (
                "reflect" if name.startswith("reflection") else "edge" if name.startswith("replication") else "constant")
            mode = _PAD_MODES.get(mode, mode)
            pad = argument(node, 1, "pad" if name != "pad" else ("pad",), ())
            pad = val(pad) if isinstance(pad, fx.Node) else [val(p) for p in pad] if isinstance(pad, (list, tuple)) else pad
            return self._pad(x, pad, mode)
        if name in _SPLITS:
            return Op.SLICE, "Split", {}
        if name in _SLICES:
            return Op.SLICE, "Slice", self._slice(node, name, x)
        return Op.OTHER, target_name(node), {}

    # -- attribute normalization -----------------------------------------------------------

    def _conv(self, x, w, stride, padding, dilation, groups, transposed) -> tuple[Op, str, dict]:
        n = len(w) - 2
        kernel = tuple(int(k) for k in w[2:])
        stride, dilation, groups = int_tuple(stride, n), int_tuple(dilation, n), int(groups)
        if isinstance(padding, str):
            if padding == "same":
                totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
                begin, end = tuple(t // 2 for t in totals), tuple(t - t // 2 for t in totals)
            else:
                begin = end = (0,) * n
        else:
            begin = end = int_tuple(padding, n)
        if transposed:
            cin, cout = int(w[0]), int(w[1]) * groups
        else:
            cin, cout = int(w[1]) * groups, int(w[0])
        op = Op.CONV_TRANSPOSE if transposed else Op.CONV
        return op, ONNX_TYPE[op], dict(kernel=kernel, stride=stride, dilation=dilation, pads_begin=begin,
                                        pads_end=end, groups=groups, in_channels=cin, out_channels=cout)

    def _pool(self, op, x, kernel, stride, padding, dilation, ceil) -> tuple[Op, str, dict]:
        n = len(x) - 2 if x else len(int_tuple(kernel, 1))
        kernel = int_tuple(kernel, n)
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else int_tuple(stride, n)
        pads = int_tuple(padding, n)
        ch = x[1] if x and len(x) > 1 else None
        return op, ONNX_TYPE[op], dict(kernel=kernel, stride=stride, dilation=int_tuple(dilation, n), pads_begin=pads,
                                        pads_end=pads, ceil_mode=bool(ceil), in_channels=ch, out_channels=ch)

    def _adaptive(self, kind, x, output_size) -> tuple[Op, str, dict]:
        if not x or len(x) < 3:
            return Op.OTHER, "AdaptivePool", {}
        n = len(x) - 2
        sizes = output_size if isinstance(output_size, (list, tuple)) else (output_size,) * n
        sizes = tuple(x[2 + i] if s is None else int(s) for i, s in enumerate(sizes))
        ch = x[1]
        if all(s == 1 for s in sizes):
            otype = "GlobalMaxPool" if kind is Op.MAX_POOL else "GlobalAveragePool"
            return Op.GLOBAL_POOL, otype, dict(in_channels=ch, out_channels=ch)
        if all(size % s == 0 for size, s in zip(x[2:], sizes)):
            stride = tuple(size // s for size, s in zip(x[2:], sizes))
            return kind, ONNX_TYPE[kind], dict(kernel=stride, stride=stride, dilation=(1,) * n,
                                                pads_begin=(0,) * n, pads_end=(0,) * n, in_channels=ch,
                                                out_channels=ch)
        return Op.OTHER, "AdaptivePool", {}

    def _resize(self, node, x, mode, align_corners) -> tuple[Op, str, dict]:
        out = shape_of(self.values.get(node))
        scales = tuple(o / i for o, i in zip(out[2:], x[2:])) if x and out and len(x) == len(out) else ()
        onnx_mode = {"nearest": "nearest", "nearest-exact": "nearest", "bicubic": "cubic"}.get(mode, "linear")
        # PyTorch "nearest" reads floor(y * in/out); "nearest-exact" floor((y + 0.5) * in/out)
        if mode == "nearest":
            coordinate, rounding = "asymmetric", "floor"
        elif mode == "nearest-exact":
            coordinate, rounding = "half_pixel", "round_prefer_ceil"
        else:
            coordinate = "align_corners" if align_corners else "pytorch_half_pixel"
            rounding = "round_prefer_floor"
        return Op.RESIZE, "Resize", dict(scales=scales, mode=onnx_mode, coordinate_mode=coordinate,
                                         rounding=rounding)

    def _resize_function(self, node, name, x) -> tuple[Op, str, dict]:
        if name == "interpolate" or name == "upsample":
            return self._resize(node, x, argument(node, 3, "mode", "nearest"), argument(node, 4, "align_corners", None))
        base = name.lstrip("_").removeprefix("upsample_")
        mode = "nearest-exact" if "exact" in base else "nearest" if base.startswith("nearest") else (
            "bicubic" if base.startswith("bicubic") else "bilinear")
        align = argument(node, 2, "align_corners", False) if mode not in ("nearest", "nearest-exact") else None
        return self._resize(node, x, mode, align)

    def _pad(self, x, pad, mode) -> tuple[Op, str, dict]:
        if not x or len(x) < 2:
            return Op.PAD, "Pad", {}
        rank = len(x)
        if not isinstance(pad, int) and not all(isinstance(p, int) for p in pad):
            return Op.PAD, "Pad", {}  # amounts not known as integers: the layer keeps its traced shape only
        first = 2 if rank > 2 else 1  # a (batch, length) signal: no channel axis, its length is spatial
        pad = int_tuple(pad, 2 * (rank - first)) if isinstance(pad, int) else tuple(pad)
        begin, end = [0] * rank, [0] * rank
        for i in range(len(pad) // 2):  # pairs from the last axis backwards
            axis = rank - 1 - i
            begin[axis], end[axis] = pad[2 * i], pad[2 * i + 1]
        if rank == 2 and (begin[0] or end[0]):
            return Op.PAD, "Pad", {}
        return Op.PAD, "Pad", dict(pads_begin=tuple(begin[first:]), pads_end=tuple(end[first:]), mode=mode)

    def _perm(self, node, name, x) -> dict:
        if not x:
            return {}
        rank = len(x)
        order = list(range(rank))
        args = [a for a in node.args[1:]]
        try:
            if name == "permute":
                dims = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
                dims = dims or argument(node, None, "dims")
                return dict(perm=tuple(int(d) % rank for d in dims))
            if name in ("transpose", "swapaxes", "swapdims"):
                a, b = int(args[0]) % rank, int(args[1]) % rank
                order[a], order[b] = order[b], order[a]
                return dict(perm=tuple(order))
            if name in ("t", "numpy_T"):
                return dict(perm=tuple(reversed(order)))
        except (IndexError, TypeError, ValueError):
            return {}
        return {}

    def _slice(self, node, name, x) -> dict:
        """Start and step per spatial axis for basic slicing (``x[:, :, 1:]``, ``aten.slice``)."""
        if not x or len(x) < 3:
            return {}
        rank = len(x)
        first, step = [0] * rank, [1] * rank
        if name == "slice":
            items = {int(argument(node, 1, "dim", 0)) % rank: slice(argument(node, 2, "start", None), argument(node, 3, "end", None),
                                                                argument(node, 4, "step", 1))}
        elif name == "getitem":
            index = node.args[1]
            index = index if isinstance(index, tuple) else (index,)
            if any(i is Ellipsis or i is None or not isinstance(i, (slice, int)) for i in index):
                return {}
            if any(isinstance(i, int) for i in index[:rank]):
                return {}  # selects away an axis
            items = {axis: i for axis, i in enumerate(index)}
        else:
            return {}
        for axis, sl in items.items():
            if not isinstance(sl, slice):
                return {}
            start, stp = sl.start, sl.step
            if isinstance(start, fx.Node) or isinstance(stp, fx.Node):
                return {}
            start = 0 if start is None else int(start)
            stp = 1 if stp is None else int(stp)
            size = x[axis]
            start = start + size if start < 0 else start
            first[axis], step[axis] = min(max(start, 0), size), stp
        return dict(starts=tuple(first[2:]), stride=tuple(step[2:]))

    # -- BatchNorm folding, naming, graph ---------------------------------------------------
