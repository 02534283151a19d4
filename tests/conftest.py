"""Shared test helpers: a session cache of exported torchvision models, the fixture models of
``fixtures/specs/core.py``, hand-built ONNX models and a counter of work for complexity tests.

Exporting the six torchvision reference models with both exporters takes one to two
minutes, so each is exported at most once per session, and only when a test asks for it.
Set ``ARCHLINT_TEST_CACHE=/some/dir`` to keep the exports between sessions.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archlint.export import export_onnx

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
SPECS = ROOT / "fixtures" / "specs"

_TORCHVISION_LIB = []  # keeps the torchvision schema Library alive for the whole session


def import_torchvision():
    """``torchvision`` with its C ops replaced by schemas (the CPU wheel cannot load them)."""
    import torch

    if "torchvision" not in sys.modules and not _TORCHVISION_LIB:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_LIB.append(lib)
    import torchvision

    return torchvision


def _load_script(path: Path, name: str):
    """Import the script at ``path`` as module ``name`` (the fixtures folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_specs():
    """The ``MODELS`` dict of ``fixtures/specs/core.py`` (builders of the core fixtures)."""
    return _load_script(SPECS / "core.py", "fixture_specs_core_for_tests")


def load_build_script():
    """``fixtures/build_fixtures.py``: ``all_specs()``, ``built_from()``, ``spec_digest()``."""
    return _load_script(ROOT / "fixtures" / "build_fixtures.py", "fixture_build_script_for_tests")


def load_synthetic():
    """``fixtures/synthetic.py``: writers of large synthetic models (``conv_stack``)."""
    return _load_script(ROOT / "fixtures" / "synthetic.py", "fixture_synthetic_for_tests")


def fixture_path(name: str) -> Path:
    """A committed fixture model; fails the test if it is missing."""
    path = MODELS / name
    if not path.exists():
        pytest.fail(f"fixture {name} missing; run python fixtures/build_fixtures.py")
    return path


def count_calls(fn, *args, **kwargs) -> tuple[object, int]:
    """``fn(*args, **kwargs)`` and the number of function calls (Python and builtin) it made.

    The measure of work for complexity tests: unlike a clock it does not depend on the
    machine or its load, so doubling an input must roughly double it, run after run.
    """
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return result, calls


def run_cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """The real ``archlint`` command line in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", "from archlint.cli import run; run()", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


# --- torchvision reference models ------------------------------------------------------

#: name -> (constructor kwargs, input size, torchvision's published GFLOPS as printed)
ZOO = {
    "resnet50": ({}, 224, "4.089"),
    "vgg16": ({}, 224, "15.47"),
    "mobilenet_v2": ({}, 224, "0.301"),
    "densenet121": ({}, 224, "2.834"),
    "efficientnet_b0": ({}, 224, "0.386"),
    "inception_v3": ({"init_weights": False, "aux_logits": False}, 299, "5.713"),
}


@dataclass
class ZooModel:
    """One exported torchvision model plus what torch itself says about it."""

    name: str
    published_gflops: str
    paths: dict[str, Path]
    #: module path (``layer1.0.conv1``) -> FLOPs counted by FlopCounterMode
    flops: dict[str, int]
    total_flops: int
    #: conv/linear module path -> weight.numel()
    weights: dict[str, int]
    #: conv/linear module path -> module
    modules: dict = field(default_factory=dict, repr=False)


class Zoo:
    """Exports each torchvision model on first request, then serves it from the cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.models: dict[str, ZooModel] = {}

    def __getitem__(self, name: str) -> ZooModel:
        if name not in self.models:
            self.models[name] = self._build(name)
        return self.models[name]

    def exports(self, name: str) -> list[Path]:
        """Both exports of a reference model; for any other torchvision model, a dynamo export
        (no FLOP counting), made on first request and kept in the same folder."""
        if name in ZOO:
            return list(self[name].paths.values())
        path = self.folder / f"{name}_dynamo.onnx"
        if not path.exists():
            torchvision = import_torchvision()
            import torch

            torch.manual_seed(0)
            export_onnx(getattr(torchvision.models, name)(), torch.randn(1, 3, 224, 224), path, "dynamo")
        return [path]

    def _build(self, name: str) -> ZooModel:
        torchvision = import_torchvision()
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        kwargs, size, published = ZOO[name]
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(**kwargs).eval()
        x = torch.randn(1, 3, size, size)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        flops = {}
        for key, per_op in counter.get_flop_counts().items():
            if key == "Global":
                continue
            # keys are the class name of the root, then the module path: "ResNet.layer1.0.conv1"
            _, _, path = key.partition(".")
            if path:
                flops[path] = sum(per_op.values())
        weighted = {n: m for n, m in model.named_modules()
                    if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
        paths = {}
        for exporter in ("legacy", "dynamo"):
            path = self.folder / f"{name}_{exporter}.onnx"
            if not path.exists():
                export_onnx(model, x, path, exporter)
            paths[exporter] = path
        return ZooModel(name, published, paths, flops, counter.get_total_flops(),
                        {n: m.weight.numel() for n, m in weighted.items()}, weighted)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> Zoo:
    cache = os.environ.get("ARCHLINT_TEST_CACHE")
    folder = Path(cache) if cache else tmp_path_factory.mktemp("zoo")
    folder.mkdir(parents=True, exist_ok=True)
    return Zoo(folder)


@pytest.fixture(scope="session")
def specs():
    """The core fixture spec module (builders and the torch modules behind the fixtures)."""
    return load_specs()


# --- hand-built ONNX models -----------------------------------------------------------------

def chain_graph(*layers):
    """A hand-built :class:`archlint.graph.Graph`: an input shaped like the first layer's input, then
    ``layers`` in series."""
    from archlint.graph import Graph, Layer, Op

    g = Graph(model="hand-built", inputs=["x"], outputs=[layers[-1].name], unsupported_ops={})
    g.add_node("x", layer=Layer("x", Op.INPUT, "input", layers[0].input_shapes[0]))
    prev = "x"
    for layer in layers:
        g.add_node(layer.name, layer=layer)
        g.add_edge(prev, layer.name, index=0)
        prev = layer.name
    return g


def make_model(nodes, inputs, outputs, initializers=(), opset=17, domains=()):
    """An ONNX model from onnx.helper pieces; ``inputs``/``outputs`` map name -> shape (None: unknown)."""
    from onnx import TensorProto, helper

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(list(nodes), "test", [value(n, s) for n, s in inputs.items()],
                              [value(n, s) for n, s in outputs.items()], list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def weight(name, shape, value=0.1):
    """A constant float initializer."""
    import numpy as np
    from onnx import numpy_helper

    return numpy_helper.from_array(np.full(shape, value, dtype=np.float32), name)


def save(model, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path


#: Downsampling blocks of torchvision ResNet-50 (the first block of each of these stages).
RESNET_DOWNSAMPLING_BLOCKS = ("layer2", "layer3", "layer4")


@pytest.fixture(scope="session")
def resnet_stride_in_1x1(zoo):
    """ResNet-50 vs the original paper's variant (stride 2 in each downsampling block's first 1x1
    instead of its 3x3): (base dynamo export, variant legacy export, base module, variant module)."""
    tv = import_torchvision()
    import torch

    base = zoo["resnet50"]
    torch.manual_seed(0)
    head = tv.models.resnet50().eval()
    for name in RESNET_DOWNSAMPLING_BLOCKS:
        block = getattr(head, name)[0]
        block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    path = zoo.folder / "resnet50_stride_in_1x1_legacy.onnx"
    if not path.exists():
        export_onnx(head, torch.randn(1, 3, 224, 224), path, "legacy")
    return base.paths["dynamo"], path, tv.models.resnet50().eval(), head
