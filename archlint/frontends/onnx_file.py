"""Read an ONNX file safely and cheaply, pin input shapes and run shape inference.

Weight bytes are never needed: external data is checked (location inside the model's
folder, file present and long enough) but not read, except for tiny tensors that shape
inference needs (Reshape targets, reduction axes); embedded weights are dropped before
shape inference, which otherwise serializes the whole model. Shape arithmetic computed
inside the graph (Shape -> Gather -> Concat -> Reshape) is folded to constants when
inference alone leaves shapes unknown.
"""

from __future__ import annotations

import math
import os
import re
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError, ShapeError, first_line, one_line
from ..gc_pause import gc_paused
from . import InputShapes
from .onnx_control import inline_branches
from .onnx_nodes import STANDARD_DOMAINS, NodeFields, op_types, read_nodes
from .onnx_quantized import FloatView, is_quantized, read_as_float
from .onnx_wire import read_model

__all__ = ["LoadedOnnx", "load_onnx", "prepare_onnx", "InputShapes"]

#: Tensors up to this many elements keep their values (shape arguments, small constants).
SMALL_TENSOR = 1024
#: Rounds of inference + folding at most; each must fold something new to continue.
MAX_FOLD_ROUNDS = 64
#: Ops never folded even when all their inputs are constant.
_UNFOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
               "Multinomial", "Bernoulli", "If", "Loop", "Scan"}

#: Ops whose output size is set by their input values: folded only when inference knows it is small.
_GENERATORS = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "EyeLike",
               "OneHot", "RandomNormal", "RandomUniform"}


@dataclass
class LoadedOnnx:
    """A model prepared for the graph builder (inputs pinned, large weights dropped, shape arithmetic
    folded) and what shape inference found out about its values."""

    model: onnx.ModelProto
    source: str
    #: Shape of every value, from shape inference (which changes no node, only adds value_info).
    shapes: dict[str, tuple[int, ...] | None]
    #: Values of small constant tensors: initializers, Constant nodes, folded shape math.
    constants: Mapping[str, np.ndarray]
    #: Names of every tensor that does not depend on a graph input's data.
    constant_names: set[str]
    initializer_shapes: dict[str, tuple[int, ...]]
    #: The fields of each node of ``model``, in order.
    nodes: list[NodeFields]
    notes: list[str] = field(default_factory=list)
    #: Bytes of embedded tensor data the parser skipped without reading (large initializers).
    skipped_bytes: int = 0
    #: What reading quantized ops as their float forms recorded (original ops, weight names).
    float_view: FloatView = field(default_factory=FloatView)


@gc_paused
def load_onnx(path: str | os.PathLike, input_shapes: InputShapes = None) -> LoadedOnnx:
    """Parse ``path`` without its weight bytes and return it shape-inferred.

    Parameters
    ----------
    path : str or PathLike
        An ``.onnx`` file; external data files are looked for beside it.
    input_shapes : sequence of int or mapping of input name to sequence of int, optional
        Pins dynamic input dimensions. A bare sequence applies to the single input.

    Raises
    ------
    ModelLoadError
        Missing, empty, unparsable or untrustworthy file (one-line message).
    ShapeError
        Shapes that stay unknown or are inconsistent.
    """
    source = str(path)
    file = Path(path)
    try:
        if not file.exists():
            raise ModelLoadError(source, "no such file")
        if not file.is_file():
            raise ModelLoadError(source, "not a regular file")
    except (OSError, ValueError) as exc:  # unreadable folder, NUL byte in the path
        raise ModelLoadError(source, f"cannot read the file: {exc}") from None
    wire = read_model(file, source, keep_elements=SMALL_TENSOR)
    nodes = read_nodes(wire.model.graph)
    _read_external_data(wire.model, nodes, file.parent, source)
    loaded = _prepare(wire.model, nodes, source, input_shapes)
    loaded.skipped_bytes = wire.skipped_bytes
    return loaded


def prepare_onnx(model: onnx.ModelProto, source: str, input_shapes: InputShapes = None) -> LoadedOnnx:
    """Validate, pin inputs, drop large weight bytes and shape-infer an in-memory model.

    ``model`` is modified in place; pass a copy if the caller still needs it intact.
    """
    return _prepare(model, read_nodes(model.graph), source, input_shapes)


def _prepare(model: onnx.ModelProto, nodes: list[NodeFields], source: str, input_shapes: InputShapes) -> LoadedOnnx:
    """:func:`prepare_onnx` of ``model``, whose nodes' fields are ``nodes``."""
    if not model.HasField("graph") or not nodes:
        raise ModelLoadError(source, "not an ONNX model: it contains no graph nodes")
    if model.ir_version <= 0:
        raise ModelLoadError(source, "not an ONNX model: ir_version is missing")
    notes: list[str] = []
    _check_topological(model, nodes, source)
    ops = op_types(nodes)
    float_view = read_as_float(model, ops)
    branches = "If" in ops  # no pass below makes an If where there was none
    _drop_large_data(model.graph)
    _pin_inputs(model, source, input_shapes, notes)
    _unset_negative_dims(model)
    if branches:
        _resolve_branches(model, source, notes)
    if branches or is_quantized(ops):
        nodes = read_nodes(model.graph)  # rewritten
    inferred = _infer(model, source, notes, pinned=input_shapes is not None)
    listed = _shape_lists(inferred)
    del inferred  # the shapes are all the builder needs of it
    constants, constant_names = _constants(model, nodes)
    # each round inlines the If branches whose conditions are now known, or else folds the
    # shape arithmetic whose inputs inference now knows; models that reshape by shapes computed
    # after earlier reshapes (windowed attention) need several
    for _ in range(MAX_FOLD_ROUNDS):
        if not (branches and _inline_branches(model, source, notes, constants, constant_names)):
            folded = _fold(model, listed, constants, constant_names) \
                if _unknown_data_shapes(nodes, listed, constant_names) else {}
            if folded:
                _replace_with_initializers(model, folded)
            elif not (branches and _inline_branches(model, source, notes, constants, constant_names, final=True)):
                break
        listed = _shape_lists(_infer(model, source, notes, pinned=input_shapes is not None))
        nodes = read_nodes(model.graph)
        constants, constant_names = _constants(model, nodes)
    init_shapes = {t.name: tuple(t.dims[:]) for t in model.graph.initializer}
    shapes = _value_shapes(listed, init_shapes, source)
    return LoadedOnnx(model, source, shapes, constants, constant_names, init_shapes, nodes, notes,
                      float_view=float_view)


def _inline_branches(model: onnx.ModelProto, source: str, notes: list[str], constants: Mapping[str, np.ndarray],
                     constant_names: set[str], final: bool = False) -> bool:
    """:func:`~.onnx_control.inline_branches` on ``model``; the inlined weights lose their bytes too."""
    try:
        inlined = inline_branches(model.graph, notes, constants, constant_names, final)
    except ValueError as exc:
        raise ModelLoadError(source, str(exc)) from None
    if inlined:
        _drop_large_data(model.graph)
    return inlined


def _resolve_branches(model: onnx.ModelProto, source: str, notes: list[str]) -> None:
    """Inline the If branches that constants, input values or shapes choose, before strict inference.

    A graph with an If still in it may fail strict inference (branches of different ranks), so
    the shapes that choose a branch ("squeeze if this size is 1") come from lenient inference.
    """
    for _ in range(MAX_FOLD_ROUNDS):
        if not any(n.op_type == "If" for n in model.graph.node):
            return  # checked first: gathering the constants costs a pass over every model
        constants, constant_names = _constants(model, read_nodes(model.graph))
        if _inline_branches(model, source, notes, constants, constant_names):
            continue
        try:
            lenient = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        except Exception:
            return  # strict inference will say what is wrong
        folded = _fold(model, _shape_lists(lenient), constants, constant_names)
        if not folded:
            return
        _replace_with_initializers(model, folded)


# --- file safety -----------------------------------------------------------------------

def _external_fields(tensor: onnx.TensorProto) -> dict[str, str]:
    return {kv.key: kv.value for kv in tensor.external_data}


def _external_tensors(model: onnx.ModelProto, nodes: list[NodeFields]):
    yield from (t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    for node in nodes:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_location == onnx.TensorProto.EXTERNAL:
                yield attr.t


def _expected_bytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes the data of ``tensor`` takes in an external file, if its type has a fixed size."""
    if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return None
    try:
        numel = _numel(tensor.dims)
        bits = 8 * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except Exception:
        return None
    name = onnx.TensorProto.DataType.Name(tensor.data_type)
    if name in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2"):
        bits = 4 if "4" in name else 2
    return -(-numel * bits // 8) if numel >= 0 else None


def _resolve_external(tensor: onnx.TensorProto, base_dir: Path, source: str,
                      located: dict[str, tuple[Path, int]]) -> tuple[Path, int, int]:
    """Location, offset and length of an external tensor, refused if it leaves ``base_dir``.

    ``located`` keeps each location already checked (resolved path, file size): the tensors of
    an export usually share one data file, and resolving it for each costs a few system calls.
    """
    info = _external_fields(tensor)
    location = info.get("location", "")
    if location not in located:
        located[location] = _locate(location, tensor.name, base_dir, source)
    target, file_size = located[location]
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else file_size - offset
    except ValueError:
        raise ModelLoadError(source, f"external data of '{tensor.name}' has a non-integer offset or length") from None
    expected = _expected_bytes(tensor)
    if offset < 0 or length < 0 or offset + length > file_size or (expected is not None and length < expected):
        needs = max(length, expected or 0)
        raise ModelLoadError(source, f"external data file '{location}' is too short for initializer "
                                     f"'{tensor.name}' (needs bytes {offset}..{offset + needs}, "
                                     f"has {file_size}); truncated or mismatched")
    return target, offset, length


def _locate(location: str, name: str, base_dir: Path, source: str) -> tuple[Path, int]:
    """Resolved path and size of the external data file ``location`` of initializer ``name``,
    refused if it leaves ``base_dir``."""
    if not location:
        raise ModelLoadError(source, f"initializer '{name}' has external data without a location")
    if any(ord(c) < 0x20 for c in location):
        raise ModelLoadError(source, f"external data location {location!r} of '{name}' contains "
                                     "control characters; refused")
    rel = Path(location)
    # backslashes too: the same file read on Windows would climb out of the folder
    if rel.is_absolute() or ".." in rel.parts or ".." in location.replace("\\", "/").split("/") \
            or location.startswith("\\") or (len(location) > 1 and location[1] == ":"):
        raise ModelLoadError(source, f"external data location '{location}' of '{name}' "
                                     "points outside the model's folder; refused")
    try:
        root = base_dir.resolve()
        target = (base_dir / rel).resolve()
        if root != target and root not in target.parents:
            raise ModelLoadError(source, f"external data location '{location}' of '{name}' "
                                         "resolves outside the model's folder (symlink); refused")
        if not target.is_file():
            raise ModelLoadError(source, f"missing external data file '{location}' "
                                         f"(needed for initializer '{name}')")
        file_size = target.stat().st_size
    except OSError as exc:
        raise ModelLoadError(source, f"cannot access external data file '{location}' of '{name}': "
                                     f"{exc.strerror or exc}") from None
    return target, file_size


def _numel(dims: Sequence[int]) -> int:
    """Elements of a tensor of shape ``dims`` (a shape tuple or a ``TensorProto``'s dims, sliced at C speed)."""
    return math.prod(dims[:])


def _read_external_data(model: onnx.ModelProto, nodes: list[NodeFields], base_dir: Path, source: str) -> None:
    """Check every external tensor's data (inside ``base_dir``, file long enough) and read the few
    small ones whose values shape inference needs; the large ones are never read. ``nodes``: the
    fields of ``model``'s nodes."""
    located: dict[str, tuple[Path, int]] = {}
    for tensor in _external_tensors(model, nodes):
        target, offset, length = _resolve_external(tensor, base_dir, source, located)
        if _numel(tensor.dims) > SMALL_TENSOR:
            continue
        with open(target, "rb") as fh:
            fh.seek(offset)
            tensor.raw_data = fh.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data",
                "double_data", "uint64_data")


def _drop_large_data(graph: onnx.GraphProto) -> None:
    """Clear the bytes of large initializers (dims and type stay): inference needs neither."""
    for tensor in graph.initializer:
        if _numel(tensor.dims) > SMALL_TENSOR or tensor.data_location == onnx.TensorProto.EXTERNAL:
            for name in _DATA_FIELDS:
                tensor.ClearField(name)
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]


def _check_topological(model: onnx.ModelProto, nodes: list[NodeFields], source: str) -> None:
    """Every node (``nodes``: the fields of ``model``'s) reads only what comes before it, and its names are text.

    Protobuf hands string fields that are not valid UTF-8 over as ``bytes``; ONNX requires
    UTF-8, and names that are not text would break every later step.
    """
    graph = model.graph
    inputs, outputs, initializers, values = ([value.name for value in listed] for listed in (
        graph.input, graph.output, graph.initializer, graph.value_info))
    for names in (inputs, outputs, initializers, values):
        if bytes in map(type, names):
            bad = next(name for name in names if type(name) is bytes)
            raise ModelLoadError(source, f"a graph input, output or tensor name is not valid UTF-8: {bad!r}")
    known = {*initializers, *inputs, ""}
    for index, node in enumerate(nodes):
        outputs = node.output
        meta = node.meta
        if bytes in (type(node.name), type(node.op_type), type(node.domain), type(node.doc_string)) \
                or bytes in map(type, outputs) \
                or (meta and (bytes in map(type, meta) or bytes in map(type, meta.values()))):
            raise ModelLoadError(source, f"node {index} ({node.op_type!r}): its {_non_text_field(node)} is not "
                                         "valid UTF-8")
        inputs = node.input
        if not known.issuperset(inputs):
            name = next(name for name in inputs if name not in known)
            raise ModelLoadError(source, f"node '{node.name or node.op_type}' reads '{name}', which no "
                                         "earlier node, input or initializer produces "
                                         "(dangling input, cycle or unsorted graph)")
        known.update(outputs)


def _non_text_field(node: NodeFields) -> str:
    """Which string field of ``node`` protobuf handed over as bytes (not valid UTF-8)."""
    for attribute in ("name", "op_type", "domain", "doc_string"):
        if type(getattr(node, attribute)) is bytes:
            return attribute.replace("_", " ")
    if any(type(o) is bytes for o in node.output):
        return "output name"
    return "metadata"


# --- input shapes ----------------------------------------------------------------------

def _real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def _pin_inputs(model: onnx.ModelProto, source: str, input_shapes: InputShapes, notes: list[str]) -> None:
    inputs = _real_inputs(model.graph)
    if not inputs:
        raise ModelLoadError(source, "the graph has no inputs")
    wanted: dict[str, Sequence[int]] = {}
    if input_shapes is not None:
        if isinstance(input_shapes, Mapping):
            wanted = dict(input_shapes)
            unknown = set(wanted) - {i.name for i in inputs}
            if unknown:
                names = ", ".join(i.name for i in inputs)
                raise ModelLoadError(source, f"--input-shape names unknown input(s) {sorted(unknown)}; "
                                             f"the model's inputs are: {names}")
        elif len(inputs) == 1:
            wanted = {inputs[0].name: input_shapes}
        else:
            names = ", ".join(i.name for i in inputs)
            raise ModelLoadError(source, f"the model has {len(inputs)} inputs ({names}); "
                                         "give --input-shape NAME:DIMS for each")
    for value in inputs:
        ttype = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise ModelLoadError(source, f"input '{value.name}' is not a tensor")
        dims = ttype.shape.dim
        if value.name in wanted:
            target = [int(d) for d in wanted[value.name]]
            if any(d <= 0 for d in target):
                raise ModelLoadError(source, f"--input-shape for '{value.name}' must be positive, got {target}")
            if ttype.HasField("shape") and len(dims) != len(target):
                raise ModelLoadError(source, f"--input-shape for '{value.name}' has {len(target)} dims; "
                                             f"the model's input has {len(dims)}")
            ttype.shape.Clear()
            for d in target:
                ttype.shape.dim.add().dim_value = d
            continue
        if not ttype.HasField("shape"):
            raise ShapeError(source, f"input '{value.name}' has no shape; pass --input-shape "
                                     f"{value.name}:N,C,H,W")
        for axis, dim in enumerate(dims):
            if _fixed(dim):
                continue
            if dim.HasField("dim_value") and dim.dim_value == 0:
                raise ModelLoadError(source, f"input '{value.name}' has a dimension of size 0 at axis {axis}")
            # archlint never guesses a size (MACs scale with every dimension, batch included)
            label = f" ('{dim.dim_param}')" if dim.dim_param else " (written as -1)" if dim.HasField("dim_value") else ""
            shown = ",".join(str(d.dim_value) if _fixed(d) else "?" for d in dims)
            example = ",".join(str(d.dim_value) if _fixed(d) else "1" if i == 0 else "SIZE"
                               for i, d in enumerate(dims))
            raise ShapeError(source, f"input '{value.name}' has a dynamic dimension at axis {axis}{label} "
                                     f"(shape {shown}); pass concrete sizes with --input-shape, "
                                     f"e.g. --input-shape {value.name}:{example}")


def _fixed(dim: onnx.TensorShapeProto.Dimension) -> bool:
    """Whether ``dim`` has a concrete size (PaddlePaddle writes -1 for a dynamic one)."""
    return dim.HasField("dim_value") and dim.dim_value > 0


# --- declared shapes ----------------------------------------------------------------------

def _declared(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Values whose types the file declares (intermediate and output tensors): hints only."""
    return [v for v in (*model.graph.value_info, *model.graph.output) if v.HasField("type")]


def _unset_negative_dims(model: onnx.ModelProto) -> None:
    """A declared ``-1`` means a dynamic size (PaddlePaddle): make it an unknown dimension."""
    for value in _declared(model):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value < 0:
                dim.ClearField("dim_value")


def _dims_text(value: onnx.ValueInfoProto) -> str:
    if not value.type.tensor_type.HasField("shape"):
        return "[?]"
    dims = value.type.tensor_type.shape.dim
    if len(dims) > 8:
        return f"rank {len(dims)}"
    return "[" + ",".join(str(d.dim_value) if d.HasField("dim_value") else "?" for d in dims) + "]"


def _contradictions(declared: dict[str, str], inferred: onnx.ModelProto) -> list[str]:
    """Declared shapes (as text) that differ from the inferred ones, as ``'name' declared A, inferred B``."""
    found = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        if value.name in declared and value.type.tensor_type.HasField("shape"):
            now = _dims_text(value)
            if now != declared[value.name] and "?" not in now:
                found[value.name] = f"'{value.name}' declared {declared[value.name]}, inferred {now}"
    return list(found.values())


# --- inference and folding --------------------------------------------------------------

def _run_inference(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True, data_prop=True)


def _infer(model: onnx.ModelProto, source: str, notes: list[str], pinned: bool = False) -> onnx.ModelProto:
    """Shape-infer ``model``; declared shapes that contradict inference are dropped from it (and noted).

    Exporters declare intermediate and output shapes that can be stale (a PyTorch 1.9
    export declaring rank 2 where its own Reshape yields rank 3) or contradict the pinned
    inputs. They are hints: inference from the inputs wins. Only when inference fails
    without them is the graph itself inconsistent. ``pinned``: the caller set the input
    shapes, which a failure message then mentions.
    """
    hint = _PINNED if pinned else ""
    try:
        return _run_inference(model)
    except Exception as exc:
        declared = {v.name: _dims_text(v) for v in _declared(model)}
        if not declared:
            raise ShapeError(source, f"shape inference failed{_inference_problem(exc)}{hint}") from None
    del model.graph.value_info[:]
    for value in model.graph.output:
        value.ClearField("type")
    try:
        inferred = _run_inference(model)
    except Exception as exc:
        raise ShapeError(source, f"shape inference failed{_inference_problem(exc)}{hint}") from None
    wrong = _contradictions(declared, inferred)
    shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    shown = shown or "a declared element type or shape made inference fail"
    notes.append(f"the file's declared shapes contradict what inference computes from the input shapes "
                 f"({shown}); declared shapes were dropped and inferred again")
    return inferred


_PINNED = "; with the input shape you set: the model may fix some shapes for the size it was exported at"
_NODE_PROBLEM = re.compile(r"^(?:\[\w+\] Inference error\(s\): )?\(op_type:([^,]*), node name: ([^)]*)\): "
                           r"(?:\[\w+\] )?(.*)$")


def _inference_problem(exc: Exception) -> str:
    """onnx's first inference error, where it names its node as ``at node 'N' (Op): problem``.

    Examples
    --------
    >>> _inference_problem(RuntimeError("[ShapeInferenceError] Inference error(s): (op_type:Concat, node name: "
    ...     "n15): [ShapeInferenceError] Can't merge shape info. Inferred=32 Declared=28\\n(op_type:Relu, ...)"))
    " at node 'n15' (Concat): Can't merge shape info. Inferred=32 Declared=28"
    """
    found = _NODE_PROBLEM.match(first_line(exc))
    if found is None:
        return f": {one_line(exc)}"
    op, node, problem = found.groups()
    return f" at node '{node}' ({op}): {problem[:200]}"


def _shape_of(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The shape of ``value`` if every dimension has a size, else ``None``."""
    tensor = value.type.tensor_type  # an empty message, without a shape, when the value is not a tensor
    if not tensor.HasField("shape"):
        return None
    dims = tensor.shape.dim[:]  # a slice copies a repeated field at C speed, iterating it does not
    shape = tuple([d.dim_value for d in dims])
    # an unset size reads as 0; a size written as 0 is still a size
    if 0 in shape and not all(d.HasField("dim_value") for d in dims):
        return None
    return shape


class _ShapeLists(NamedTuple):
    """``(name, shape)`` of a model's inputs, value_info and outputs, in file order, each read once."""

    inputs: list[tuple[str, tuple[int, ...] | None]]
    value_info: list[tuple[str, tuple[int, ...] | None]]
    outputs: list[tuple[str, tuple[int, ...] | None]]


def _shape_lists(model: onnx.ModelProto) -> _ShapeLists:
    g = model.graph
    return _ShapeLists(*([(v.name, _shape_of(v)) for v in values] for values in (g.input, g.value_info, g.output)))


def _value_shapes(listed: _ShapeLists, init_shapes: dict[str, tuple[int, ...]],
                  source: str) -> dict[str, tuple[int, ...] | None]:
    """Shape of every value: a known shape wins over an unknown one, an initializer's dims over both."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    for name, shape in chain(listed.inputs, listed.value_info, listed.outputs):
        if shape and min(shape) < 0:
            raise ShapeError(source, f"tensor '{name}' has a negative dimension {list(shape)}")
        if shape is not None or name not in shapes:
            shapes[name] = shape
    shapes.update(init_shapes)
    return shapes


class _SmallValues(Mapping):
    """Values of small constant tensors, each converted to an array the first time it is asked for.

    A conv stack's weights are small tensors too; only the few that shape arithmetic, branch
    conditions or pad and slice arguments read are ever converted. A tensor whose bytes
    do not convert (dropped, malformed) is not in the mapping, as if it had no value.
    """

    def __init__(self, tensors: dict[str, list[onnx.TensorProto]], converted: dict[str, np.ndarray]) -> None:
        #: name -> small initializers of that name, in file order (the last that converts wins)
        self._tensors = tensors
        self._converted = converted

    def __getitem__(self, name: str) -> np.ndarray:
        found = self._converted.get(name)
        if found is not None:
            return found
        for tensor in reversed(self._tensors.get(name, ())):
            try:
                found = self._converted[name] = numpy_helper.to_array(tensor)
                return found
            except Exception:
                continue  # bytes dropped or malformed: the dims are still known
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __iter__(self):
        return iter([name for name in {**self._tensors, **self._converted} if name in self])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _constants(model: onnx.ModelProto, nodes: list[NodeFields]) -> tuple[Mapping[str, np.ndarray], set[str]]:
    """Values of small constants, and the names of all data-independent tensors (``nodes``: the fields
    of ``model``'s nodes)."""
    tensors: dict[str, list[onnx.TensorProto]] = {}
    values: dict[str, np.ndarray] = {}  # Constant nodes: converted now, and winning over initializers
    names: set[str] = set()
    external = onnx.TensorProto.EXTERNAL
    for t in model.graph.initializer:
        name = t.name
        names.add(name)
        if _numel(t.dims) <= SMALL_TENSOR and t.data_location != external:
            tensors.setdefault(name, []).append(t)
    for node in nodes:
        op_type, inputs, outputs = node.op_type, node.input, node.output
        if op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            names.update(outputs)
            for attr in node.attribute:
                if attr.name == "value" and _numel(attr.t.dims) <= SMALL_TENSOR:
                    try:
                        values[outputs[0]] = numpy_helper.to_array(attr.t)
                    except Exception:
                        pass
                elif attr.name in ("value_int", "value_ints", "value_float", "value_floats"):
                    values[outputs[0]] = np.array(onnx.helper.get_attribute_value(attr))
        elif op_type in ("Shape", "Size") or names.issuperset([i for i in inputs if i]):
            names.update([o for o in outputs if o])
    return _SmallValues(tensors, values), names


def _unknown_data_shapes(nodes: list[NodeFields], listed: _ShapeLists, constant_names: set[str]) -> bool:
    shapes = dict(chain(listed.value_info, listed.outputs))
    return any(shapes.get(o) is None for node in nodes for o in node.output if o and o not in constant_names)


def _fold(model: onnx.ModelProto, listed: _ShapeLists, constants: Mapping[str, np.ndarray],
          constant_names: set[str]) -> dict[str, np.ndarray]:
    """Evaluate data-independent nodes (shape arithmetic) whose inputs are all known."""
    from onnx.reference import ReferenceEvaluator  # only legacy dynamic-shape exports need it

    shapes = dict(chain(listed.inputs, listed.value_info))
    known = ChainMap({}, constants)
    folded: dict[str, np.ndarray] = {}
    opsets = list(model.opset_import)
    for node in model.graph.node:
        outputs = [o for o in node.output if o]
        if not outputs or all(o in known for o in outputs) or node.op_type in _UNFOLDABLE:
            continue
        if node.op_type == "Shape" and shapes.get(node.input[0]) is not None:
            shape = np.array(shapes[node.input[0]], dtype=np.int64)
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            start, end = attrs.get("start", 0), attrs.get("end", None)
            known[outputs[0]] = folded[outputs[0]] = shape[start:end]
            continue
        if node.op_type == "Size" and shapes.get(node.input[0]) is not None:
            known[outputs[0]] = folded[outputs[0]] = np.array(_numel(shapes[node.input[0]]), dtype=np.int64)
            continue
        ins = [i for i in node.input if i]
        if not all(i in known for i in ins) or any(o not in constant_names for o in outputs):
            continue
        out_shapes = [shapes.get(o) for o in outputs]
        if any(s is not None and _numel(s) > SMALL_TENSOR for s in out_shapes) or (
                node.op_type in _GENERATORS and any(s is None for s in out_shapes)):
            continue  # a large (or possibly huge: ConstantOfShape of [2^20]*3) value is never a shape
        if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attr in node.attribute):
            continue
        try:
            one = onnx.helper.make_model(
                onnx.helper.make_graph([node], "fold", [
                    onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(known[i].dtype), known[i].shape)
                    for i in dict.fromkeys(ins)],
                    [onnx.helper.make_empty_tensor_value_info(o) for o in outputs]),
                opset_imports=opsets, ir_version=model.ir_version)
            results = ReferenceEvaluator(one).run(None, {i: known[i] for i in ins})
        except Exception:
            continue  # not foldable here; shapes downstream may stay unknown
        for name, value in zip(outputs, results):
            value = np.asarray(value)
            if value.size <= SMALL_TENSOR:
                known[name] = folded[name] = value
    return folded


def _replace_with_initializers(model: onnx.ModelProto, folded: dict[str, np.ndarray]) -> None:
    """Turn folded values into initializers and drop the nodes that computed only them."""
    graph = model.graph
    keep = [n for n in graph.node if not all(o in folded for o in n.output if o)]
    del graph.node[:]
    graph.node.extend(keep)
    existing = {t.name for t in graph.initializer}
    for name, value in folded.items():
        if name not in existing:
            tensor = numpy_helper.from_array(value, name)
            graph.initializer.append(tensor)
            if model.ir_version < 4:  # before IR 4, inference sees only initializers listed as inputs
                graph.input.append(onnx.helper.make_tensor_value_info(name, tensor.data_type, tensor.dims))
    outputs = {o.name for o in graph.output}
    for value in list(graph.value_info):
        if value.name in folded and value.name not in outputs:
            graph.value_info.remove(value)
