"""Load PyTorch models from objects, files and factory references, never unpickling untrusted data.

- ``torch.nn.Module`` objects go straight to :mod:`.torch_module`, ``ExportedProgram`` objects to
  :mod:`.torch_convert`.
- ``pkg.module:factory`` imports ``pkg.module`` and calls ``factory()``. Writing that
  reference is the explicit opt-in to running the named code (as ``uvicorn app:app`` is);
  the factory may return a module or ``(module, input_shape)``.
- ``.pt2`` archives (``torch.export.save``) are inspected before ``torch.export.load``:
  ``torch.export.load`` unpickles sample inputs (retrying with ``weights_only=False``),
  weights and constants marked ``use_pickle``, and custom objects. Every such payload must
  load with ``torch.load(weights_only=True)`` first (so the real load only replays the
  same allow-listed pickle), custom/opaque objects are refused.
- TorchScript archives (``torch.jit.save``) are loaded with ``torch.jit.load`` (TorchScript's
  own restricted unpickler), converted to ONNX in memory and read by the ONNX frontend.
- A ``torch.save(model)`` pickle can only be loaded by running code named in the file, so
  it is refused unless ``unsafe_load_pickle`` is set (``--unsafe-load-pickle``).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import posixpath
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, one_line
from ..graph import Graph

__all__ = ["load_torch"]

_PICKLE_HELP = ("it is a pickle (torch.save of a whole model), and loading a pickle runs arbitrary code "
                "from the file; re-export it with torch.export.save(torch.export.export(model, args), "
                "'model.pt2') or torch.onnx.export, or point archlint at the code with "
                "pkg.module:factory; pass --unsafe-load-pickle (unsafe_load_pickle=True) only for files you trust")


def load_torch(model: Any, input_shapes=None, example_inputs=None, unsafe_load_pickle: bool = False) -> Graph:
    """Graph of a torch object, a ``.pt2``/TorchScript/pickle file or a ``pkg.module:factory`` reference."""
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if os.path.exists(text) or text.lower().endswith((".pt2", ".pt", ".pth", ".ptl", ".torchscript")):
            return _load_file(text, input_shapes, example_inputs, unsafe_load_pickle)
        from .construction_torch import ConstructionRecorder

        with ConstructionRecorder() as record:  # archlint builds the model: watch where each layer is made
            module, shape = _call_factory(text)
        return _module_graph(module, example_inputs, input_shapes if input_shapes is not None else shape, text,
                             record)
    return _object_graph(model, input_shapes, example_inputs, None)


def _object_graph(model, input_shapes, example_inputs, source, record=None):
    from .torch_convert import exported_program_graph
    from .torch_module import torch_graph
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        return _with_traced_definitions(exported_program_graph(model, source or "<ExportedProgram>"), model)
    if isinstance(model, torch.jit.ScriptModule):
        return _torchscript_graph(model, input_shapes, example_inputs, source or "<ScriptModule>")
    graph = torch_graph(model, example_inputs=example_inputs, input_shapes=input_shapes, source=source)
    return _with_definitions(graph, model, record)


def _with_definitions(graph: Graph, model, record) -> Graph:
    """``graph`` with each layer's construction line (see :mod:`.construction_torch`)."""
    from .construction import annotate
    from .construction_torch import LiveResolver, bare_container_note

    resolver = LiveResolver(model, record)
    annotate(graph, resolver.modules.__contains__, resolver.definition)
    note = bare_container_note(model, record)
    if note:
        graph.graph.setdefault("notes", []).append(note)
    return graph


def _with_traced_definitions(graph: Graph, program) -> Graph:
    """``graph`` with construction lines from the classes and traces a ``torch.export`` program records."""
    from .sources import trace_files

    classes: dict[str, str] = {}
    files: dict[str, None] = {}
    for node in program.graph.nodes:
        for entry in (node.meta.get("nn_module_stack") or {}).values():
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
                cls = entry[1]
                classes.setdefault(entry[0], cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}")
        files.update(dict.fromkeys(trace_files(node.meta.get("stack_trace") or "")))
    return _with_class_definitions(graph, classes, files)


def _with_class_definitions(graph: Graph, classes: dict[str, str], files) -> Graph:
    """``graph`` with construction lines read from the sources of ``classes`` (module path ->
    ``package.module.Class``), found among ``files`` or on ``sys.path``."""
    from .construction import layer_module, set_definitions
    from .construction_onnx import LEGACY_NOTE, traced_definitions

    if not classes:
        return graph
    layers = [graph.layer(name) for name in graph.nodes]
    paths = [layer_module(layer, classes.__contains__) for layer in layers]
    found, notes = traced_definitions(classes, files, paths, [layer.op for layer in layers])
    set_definitions(graph, {layer.name: defined for layer, defined in zip(layers, found)})
    kept = [n for n in graph.graph.get("notes", []) if n != LEGACY_NOTE]
    graph.graph["notes"] = kept + [n for n in notes if n not in kept]
    return graph


_MANGLE = re.compile(r"\.___torch_mangle_\d+")


def _script_classes(script) -> dict[str, str]:
    """Module path -> Python class name of each module of a TorchScript model, as it records them
    (``__torch__.helper_net.HelperNet``, mangled names unmangled)."""
    classes = {}
    for path, sub in script.named_modules():
        name = getattr(getattr(sub, "_c", None), "qualified_name", None)
        if isinstance(name, str) and name.startswith("__torch__."):
            classes[path] = _MANGLE.sub("", name[len("__torch__."):])
    return classes


def _module_graph(module, example_inputs, input_shapes, source, record=None):
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(source, f"the factory returned a {type(module).__name__}, not a torch.nn.Module")
    return _object_graph(module, input_shapes, example_inputs, source, record)


# --- factories -------------------------------------------------------------------------

def _call_factory(reference: str):
    """Import ``pkg.module`` and return ``(module, input_shape or None)`` from ``attr``."""
    module_name, _, attr = reference.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like python -m: modules in the current folder
    try:
        target = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(reference, f"cannot import module '{module_name}': {exc}") from None
    except Exception as exc:
        raise ModelLoadError(reference, f"importing '{module_name}' raised {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelLoadError(reference, f"module '{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    import torch

    if not isinstance(target, torch.nn.Module):
        if not callable(target):
            raise ModelLoadError(reference, f"'{attr}' is neither a torch.nn.Module nor a callable factory")
        try:
            from .torch_quiet import quiet_torch

            with quiet_torch():
                target = target()
        except Exception as exc:
            raise ModelLoadError(reference, f"factory '{attr}()' raised {type(exc).__name__}: {exc}") from None
    shape = None
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], torch.nn.Module):
        target, shape = target
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
    return target, shape


# --- files -----------------------------------------------------------------------------

def _load_file(path: str, input_shapes, example_inputs, unsafe: bool) -> Graph:
    file = Path(path)
    if not file.exists():
        raise ModelLoadError(path, "no such file")
    if not file.is_file():
        raise ModelLoadError(path, "not a regular file")
    if file.stat().st_size == 0:
        raise ModelLoadError(path, "empty file (0 bytes)")
    names: list[str] = []
    if zipfile.is_zipfile(file):
        try:
            with zipfile.ZipFile(file) as archive:
                names = archive.namelist()
                if any(n.endswith("archive_format") and archive.read(n).strip() == b"pt2" for n in names):
                    return _load_pt2(path, archive, names)
        except (zipfile.BadZipFile, OSError, KeyError) as exc:
            raise ModelLoadError(path, f"unreadable zip archive: {exc}") from None
        if any(posixpath.basename(n) == "constants.pkl" for n in names) and any("/code/" in n for n in names):
            import torch

            from .torch_quiet import quiet_torch

            try:
                with quiet_torch():
                    script = torch.jit.load(str(file), map_location="cpu")
            except Exception as exc:
                raise ModelLoadError(path, f"not a loadable TorchScript archive: {one_line(exc)}") from None
            return _torchscript_graph(script, input_shapes, example_inputs, path)
    return _load_pickle(path, input_shapes, example_inputs, unsafe)


def _load_pt2(path: str, archive: zipfile.ZipFile, names: list[str]) -> Graph:
    """Check every pickled payload of a torch.export archive, then load it."""
    import torch

    from .torch_convert import exported_program_graph
    from .torch_quiet import quiet_torch

    def safe_pickle(member: str, what: str) -> None:
        try:
            data = archive.read(member)
        except KeyError:
            raise ModelLoadError(path, f"{what} '{member}' is missing from the archive") from None
        try:
            with quiet_torch():
                torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception:
            raise ModelLoadError(path, f"refused: {what} '{member}' is a pickle that needs arbitrary Python "
                                       "objects to load (loading it would run code from the file)") from None

    for member in names:
        base = posixpath.basename(member)
        folder = posixpath.dirname(member)
        if base.startswith(("custom_obj_", "opaque_obj_")):
            raise ModelLoadError(path, f"refused: '{member}' is a pickled custom object (loading it would run "
                                       "code from the file)")
        if "/data/sample_inputs/" in f"/{member}" and not member.endswith("/"):
            safe_pickle(member, "sample inputs")
        if base.endswith(("_weights_config.json", "_constants_config.json")):
            try:
                config = json.loads(archive.read(member)).get("config", {})
            except (ValueError, AttributeError):
                raise ModelLoadError(path, f"'{member}' is not valid JSON") from None
            for fqn, entry in config.items():
                if not isinstance(entry, dict):
                    raise ModelLoadError(path, f"'{member}': bad entry for '{fqn}'")
                name = str(entry.get("path_name", ""))
                if name.startswith(("custom_obj_", "opaque_obj_")):
                    raise ModelLoadError(path, f"refused: '{fqn}' is a pickled custom object")
                if entry.get("use_pickle"):
                    safe_pickle(posixpath.join(folder, name), f"tensor '{fqn}'")
    try:
        with quiet_torch():
            program = torch.export.load(path)
    except Exception as exc:
        raise ModelLoadError(path, f"not a loadable torch.export archive: {one_line(exc)}") from None
    return _with_traced_definitions(exported_program_graph(program, path), program)


def _load_pickle(path: str, input_shapes, example_inputs, unsafe: bool) -> Graph:
    import torch

    from .torch_quiet import quiet_torch

    try:
        with quiet_torch():
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        if not unsafe:
            text = str(exc)
            if "Unsupported global" in text or "weights_only" in text.lower() or "GLOBAL" in text:
                raise ModelLoadError(path, f"refused: {_PICKLE_HELP}") from None
            raise ModelLoadError(path, f"not a PyTorch file archlint can read (.pt2, TorchScript): "
                                       f"{one_line(exc)}") from None
        try:
            with quiet_torch():
                obj = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as exc2:
            raise ModelLoadError(path, f"cannot load the pickle: {one_line(exc2)}") from None
    if isinstance(obj, torch.nn.Module):
        return _object_graph(obj, input_shapes, example_inputs, path)
    if isinstance(obj, dict):
        raise ModelLoadError(path, "holds only weights (a state_dict), not an architecture; use "
                                   "pkg.module:factory to build the model in code, or a .pt2/.onnx export")
    raise ModelLoadError(path, f"holds a {type(obj).__name__}, not a model")


def _torchscript_graph(script, input_shapes, example_inputs, source: str) -> Graph:
    """TorchScript -> ONNX (in memory, legacy exporter) -> the ONNX frontend."""
    import onnx
    import torch

    from .onnx_file import prepare_onnx
    from .onnx_graph import onnx_graph
    from .torch_inputs import example_args
    from .torch_quiet import quiet_torch

    if example_inputs is not None:
        args = tuple(torch.zeros(t.shape, dtype=t.dtype) for t in example_args(example_inputs))
    elif input_shapes is not None and not isinstance(input_shapes, dict):
        args = (torch.zeros(tuple(input_shapes)),)
    elif input_shapes:
        args = tuple(torch.zeros(tuple(s)) for s in input_shapes.values())
    else:
        raise ModelLoadError(source, "a TorchScript model needs input shapes: give --input-shape 1,3,224,224")
    buffer = io.BytesIO()
    try:
        with quiet_torch():
            torch.onnx.export(script, args, buffer, dynamo=False, opset_version=17)
    except Exception as exc:
        raise ModelLoadError(source, f"cannot convert the TorchScript model: {one_line(exc)}") from None
    model = onnx.load_from_string(buffer.getvalue())
    graph = onnx_graph(prepare_onnx(model, source))
    graph.graph["format"] = "torchscript"
    return _with_class_definitions(graph, _script_classes(script), ())
