"""The model graph: a networkx DiGraph of layers drawn from a small canonical op vocabulary.

Every frontend produces a :class:`Graph`; analyses and rules read it and never see the
source format. Each node is keyed by its layer name (the module path where the source
knows it, e.g. ``layer2.0.downsample.0``) and carries one frozen :class:`Layer` under
the ``"layer"`` attribute. Edges run from producer to consumer and carry the consumer's
input position (``"index"``) and the producer's output position (``"output"``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

import networkx as nx

__all__ = ["Op", "Layer", "Source", "Graph", "WEIGHTED_OPS", "POOL_OPS", "SPATIAL_OPS"]


class Op(str, enum.Enum):
    """Canonical layer kinds. ``Layer.source_op`` keeps the format's own op name."""

    INPUT = "input"
    CONV = "conv"
    CONV_TRANSPOSE = "conv_transpose"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"
    GLOBAL_POOL = "global_pool"
    LINEAR = "linear"
    MATMUL = "matmul"
    ADD = "add"
    MUL = "mul"
    CONCAT = "concat"
    ACTIVATION = "activation"
    NORM = "norm"
    RESHAPE = "reshape"
    FLATTEN = "flatten"
    RESIZE = "resize"
    PAD = "pad"
    SLICE = "slice"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


#: Layers holding learned weights that the gradient crosses in series.
WEIGHTED_OPS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR})
#: Windowed pooling layers.
POOL_OPS = frozenset({Op.MAX_POOL, Op.AVG_POOL})
#: Layers with a sliding window over spatial axes (kernel, stride, padding, dilation).
SPATIAL_OPS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.MAX_POOL, Op.AVG_POOL})


@dataclass(frozen=True)
class Source:
    """Where a layer is defined or called in Python source, when the model says so."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Layer:
    """One node of the graph, with normalized attributes.

    Spatial tuples (``kernel``, ``stride``, ``pads_begin``, ``pads_end``, ``dilation``)
    have one entry per spatial axis of the input (H, W for 2-D) and are empty for
    layers without a sliding window. Shapes are full tensor shapes including batch.
    ``stride`` of a resize is the output/input scale per spatial axis.
    """

    name: str
    op: Op
    source_op: str
    output_shape: tuple[int, ...] | None = None
    input_shapes: tuple[tuple[int, ...] | None, ...] = ()
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    pads_begin: tuple[int, ...] = ()
    pads_end: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    in_channels: int | None = None
    out_channels: int | None = None
    ceil_mode: bool = False
    #: Resize: output/input size ratio per spatial axis, and interpolation mode.
    scales: tuple[float, ...] = ()
    mode: str = ""
    #: Resize: ONNX coordinate_transformation_mode ("half_pixel", "asymmetric", "align_corners"...).
    coordinate_mode: str = ""
    #: Resize with mode "nearest": how a fractional source position is rounded
    #: ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil").
    rounding: str = ""
    #: Slice: first index and step per spatial axis (identity where not sliced).
    starts: tuple[int, ...] = ()
    #: Transpose: output axis i takes input axis perm[i].
    perm: tuple[int, ...] = ()
    #: Shapes of the learned tensors this layer uses (weights, bias, norm scale...).
    param_shapes: tuple[tuple[int, ...], ...] = ()
    #: Where the layer's name came from: "module" path, "scope" of an op, or "node" name.
    name_origin: str = "node"
    source: Source | None = None
    #: Text attached to the node by the model author (ONNX doc_string or an ``archlint``
    #: metadata entry); the engine reads inline suppressions such as ``archlint: ignore[AL101]``.
    comment: str = ""
    #: Free-form extras from the frontend (e.g. the format's node name).
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def spatial_rank(self) -> int:
        """Number of spatial axes of the (first) input, 0 for vectors."""
        shape = self.input_shapes[0] if self.input_shapes else self.output_shape
        return max(len(shape) - 2, 0) if shape else 0


class Graph(nx.DiGraph):
    """A model as a DiGraph of layer names; see the module docstring for the attributes.

    Graph-level attributes live in ``graph.graph`` (networkx convention):
    ``model`` (file or object description), ``format``, ``inputs`` and ``outputs``
    (layer names), ``unsupported_ops`` (format op name -> count) and ``notes``
    (assumptions made while reading the model, one sentence each).
    """

    def layer(self, name: str) -> Layer:
        """The :class:`Layer` stored at node ``name``."""
        return self.nodes[name]["layer"]

    # Caches of order() and inputs_of(), dropped by every method that adds or removes
    # nodes or edges (networkx's number_of_edges() is O(edges), too slow as a cache key).
    _CACHES = ("_order", "_inputs")

    def _changed(self) -> None:
        for name in self._CACHES:
            self.__dict__.pop(name, None)

    def add_node(self, *args, **kwargs):
        self._changed()
        return super().add_node(*args, **kwargs)

    def add_nodes_from(self, *args, **kwargs):
        self._changed()
        return super().add_nodes_from(*args, **kwargs)

    def remove_node(self, *args, **kwargs):
        self._changed()
        return super().remove_node(*args, **kwargs)

    def remove_nodes_from(self, *args, **kwargs):
        self._changed()
        return super().remove_nodes_from(*args, **kwargs)

    def add_edge(self, *args, **kwargs):
        self._changed()
        return super().add_edge(*args, **kwargs)

    def add_edges_from(self, *args, **kwargs):
        self._changed()
        return super().add_edges_from(*args, **kwargs)

    def remove_edge(self, *args, **kwargs):
        self._changed()
        return super().remove_edge(*args, **kwargs)

    def remove_edges_from(self, *args, **kwargs):
        self._changed()
        return super().remove_edges_from(*args, **kwargs)

    def clear(self):
        self._changed()
        return super().clear()

    def clear_edges(self):
        self._changed()
        return super().clear_edges()

    def order(self) -> list[str]:
        """Layer names in a deterministic topological order (ties by insertion order).

        Cached until nodes or edges are added or removed.
        """
        cached = self.__dict__.get("_order")
        if cached is None:
            position = {n: i for i, n in enumerate(self.nodes)}
            cached = list(nx.lexicographical_topological_sort(self, key=position.__getitem__))
            self.__dict__["_order"] = cached
        return cached

    def layers(self) -> Iterator[Layer]:
        """All layers in :meth:`order`."""
        for name in self.order():
            yield self.nodes[name]["layer"]

    def inputs_of(self, name: str) -> list[str]:
        """Producers of ``name`` ordered by the consumer's input position.

        Built for all nodes in one pass and cached like :meth:`order`, so that analyses
        visiting every layer stay linear in the size of the graph.
        """
        cached = self.__dict__.get("_inputs")
        if cached is None:
            table: dict[str, list[tuple[int, str]]] = {}
            for src, dst, index in self.edges(data="index", default=0):
                table.setdefault(dst, []).append((index, src))
            cached = {dst: [src for _, src in sorted(pairs, key=lambda p: p[0])] for dst, pairs in table.items()}
            self.__dict__["_inputs"] = cached
        if name not in self._node:
            raise nx.NetworkXError(f"The node {name} is not in the digraph.")
        return list(cached.get(name, ()))

    @property
    def model(self) -> str:
        return self.graph.get("model", "<model>")
