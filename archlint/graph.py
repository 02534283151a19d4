"""The model graph: a networkx DiGraph of layers drawn from a small canonical op vocabulary.

Every frontend produces a :class:`Graph`; analyses and rules read it and never see the
source format. Each node is keyed by its layer name (the module path where the source
knows it, e.g. ``layer2.0.downsample.0``) and carries one read-only :class:`Layer` under
the ``"layer"`` attribute. Edges run from producer to consumer and carry the consumer's
input position (``"index"``) and the producer's output position (``"output"``).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import networkx as nx

__all__ = ["Op", "Layer", "Source", "Graph", "WEIGHTED_OPS", "POOL_OPS", "SPATIAL_OPS", "reduction_op"]


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
    #: LSTM, GRU or simple RNN over a sequence (all time steps and directions in one layer).
    RECURRENT = "recurrent"
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


#: Layers holding learned weights that the gradient crosses in series (a recurrent layer
#: counts once: its depth across stacked layers, not through time).
WEIGHTED_OPS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.LINEAR, Op.RECURRENT})
#: Windowed pooling layers.
POOL_OPS = frozenset({Op.MAX_POOL, Op.AVG_POOL})
#: Layers with a sliding window over spatial axes (kernel, stride, padding, dilation).
SPATIAL_OPS = frozenset({Op.CONV, Op.CONV_TRANSPOSE, Op.MAX_POOL, Op.AVG_POOL})
#: Windowed layers whose windows read their input (a transposed conv writes its windows instead).
READING_OPS = frozenset({Op.CONV, Op.MAX_POOL, Op.AVG_POOL})
#: Graph inputs, and standard convolutions, as sets: a set test is a hash lookup, while reading
#: ``Op.INPUT`` or ``Op.CONV`` goes through the enum's hook (Python 3.11 does not specialize it).
INPUT_OPS = frozenset({Op.INPUT})
CONV_OPS = frozenset({Op.CONV})


def reduction_op(rank: int, axes: Iterable[int]) -> Op | None:
    """The op class of a mean/sum/max over ``axes`` (0-based, non-negative) of a rank-``rank`` tensor.

    Both frontends read reductions this way: over every spatial axis of an NCHW map it is
    global pooling; over the batch, channel or token axes only (or of a tensor without
    spatial axes) it is a statistic per position, like a norm's; otherwise ``None``.

    Examples
    --------
    >>> reduction_op(4, [2, 3]), reduction_op(3, [1]), reduction_op(2, [1]), reduction_op(4, [2])
    (<Op.GLOBAL_POOL: 'global_pool'>, <Op.NORM: 'norm'>, <Op.NORM: 'norm'>, None)
    """
    axes = sorted(axes)
    if rank >= 3 and axes == list(range(2, rank)):
        return Op.GLOBAL_POOL
    if rank < 3 or all(a < 2 for a in axes):
        return Op.NORM
    return None


@dataclass(frozen=True)
class Source:
    """Where a layer is defined or called in Python source, when the model says so."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Layer:
    """One node of the graph, with normalized attributes.

    Read-only by contract: frontends build a layer once and the canonical pass replaces it
    with a changed copy (``dataclasses.replace``); analyses and rules never assign to one.
    It is not a frozen dataclass because analyses and rules read layer attributes millions
    of times on large graphs: a frozen record's attributes live in a dict of their own,
    which makes every read several times slower (or its construction several times slower,
    one ``object.__setattr__`` per field), a quarter of the analysis time on 10,000 layers.

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
    #: Resize: interpolation mode. Pad: ONNX pad mode ("constant", "reflect", "edge", "wrap").
    #: Conv and pooling: the mode of a Pad folded into the window's padding ("reflect",
    #: "edge", "wrap"; "" for zeros), see :mod:`archlint.canonical`.
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
    #: Recurrent layer: gates per cell (LSTM 4, GRU 3, RNN 1) and directions (2 if bidirectional);
    #: ``in_channels`` is its input size and ``out_channels`` its hidden size.
    gates: int = 0
    directions: int = 1
    #: Shapes of the learned tensors this layer uses (weights, bias, norm scale...).
    param_shapes: tuple[tuple[int, ...], ...] = ()
    #: Where the layer's name came from: "module" path, "scope" of an op, or "node" name.
    name_origin: str = "node"
    #: Where ``forward`` calls this layer (the innermost frame outside torch), when known.
    source: Source | None = None
    #: Where the layer (or the small block holding it) is constructed or bound to its parent
    #: module: the line to edit. See :mod:`archlint.frontends.construction`.
    defined_at: Source | None = None
    #: The construction lines from the innermost outwards (``defined_at`` is one of them).
    construction: tuple[Source, ...] = ()
    #: Text attached to the node by the model author (ONNX doc_string or an ``archlint``
    #: metadata entry); the engine reads inline suppressions such as ``archlint: ignore[XY101]``.
    comment: str = ""
    #: Free-form extras from the frontend (e.g. the format's node name).
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def _by_index(preds: dict[str, dict]) -> tuple[str, ...]:
    """Producer names ordered by the ``index`` of their edge (the consumer's input position)."""
    if len(preds) == 1:
        return tuple(preds)
    return tuple(src for src, _ in sorted(preds.items(), key=lambda e: e[1].get("index", 0)))


class Graph(nx.DiGraph):
    """A model as a DiGraph of layer names; see the module docstring for the attributes.

    Graph-level attributes live in ``graph.graph`` (networkx convention):
    ``model`` (file or object description), ``format``, ``inputs`` and ``outputs``
    (layer names), ``unsupported_ops`` (format op name -> count) and ``notes``
    (assumptions made while reading the model, one sentence each).
    """

    def layer(self, name: str) -> Layer:
        """The :class:`Layer` stored at node ``name``."""
        return self._node[name]["layer"]

    def add_nodes_and_edges(self, nodes: Iterable[tuple[str, dict]], edges: Iterable[tuple[str, str, dict]]) -> None:
        """``add_nodes_from(nodes)``, then ``add_edges_from(edges)``, at a fraction of their cost per item
        (frontends add tens of thousands): ``(name, attributes)`` nodes, ``(producer, consumer, data)`` edges.

        As there, a node already in the graph has its attributes updated, and so has an edge.
        Unlike there, a new node or edge keeps the attribute dict it is given: the caller hands
        it over (copying tens of thousands of dicts and freeing the originals is most of the cost).
        """
        node, succ, pred = self._node, self._succ, self._pred
        for name, data in nodes:
            if name in node:
                node[name].update(data)
            else:
                node[name], succ[name], pred[name] = data, {}, {}
        for u, v, data in edges:
            if u not in succ:
                node[u], succ[u], pred[u] = {}, {}, {}
            if v not in succ:
                node[v], succ[v], pred[v] = {}, {}, {}
            old = succ[u].get(v)
            if old is None:
                succ[u][v] = pred[v][u] = data
            else:
                old.update(data)
        clear_cache = getattr(nx, "_clear_cache", None)  # networkx >= 3.3 caches results per graph
        if clear_cache is not None:
            clear_cache(self)

    def drop_views(self) -> None:
        """Forget the views networkx caches on the graph (``G.nodes``, ``G.edges``...) and its results.

        Each view refers back to the graph, so a graph that has used them is freed only by the
        cyclic garbage collector, which then walks every record the graph holds (tens of
        milliseconds for 10,000 layers); without them, dropping the last reference frees it at
        once. The views come back on their next use.
        """
        for klass in type(self).__mro__:
            for name, attribute in vars(klass).items():
                if isinstance(attribute, functools.cached_property):
                    self.__dict__.pop(name, None)
        cache = self.__dict__.get("__networkx_cache__")
        if cache:
            cache.clear()

    # order(), layers() and inputs_of() are cached once the graph is frozen (``nx.freeze``,
    # done by the frontends and by the engine before any analysis): a frozen graph cannot
    # change, so the caches never go stale. Unfrozen graphs (being built) compute afresh.

    def _cached(self, key: str, compute):
        value = self.__dict__.get(key)
        if value is not None:
            return value  # only frozen graphs store caches
        if not nx.is_frozen(self):
            return compute()
        value = self.__dict__[key] = compute()
        return value

    def order(self) -> list[str]:
        """Layer names in a deterministic topological order (ties by insertion order)."""
        def compute() -> list[str]:
            position = {n: i for i, n in enumerate(self.nodes)}
            if all(position[u] < position[v] for u, v in self.edges):
                return list(self.nodes)  # frontends add layers in order: the same result, in O(n)
            return list(nx.lexicographical_topological_sort(self, key=position.__getitem__))
        return list(self._cached("_order", compute))

    def layers(self) -> Iterator[Layer]:
        """All layers in :meth:`order`."""
        return iter(self._cached("_layers", lambda: [self._node[n]["layer"] for n in self.order()]))

    def inputs_of(self, name: str) -> tuple[str, ...]:
        """Producers of ``name`` ordered by the consumer's input position (a tuple: callers share it)."""
        table = self.__dict__.get("_inputs")
        if table is None:
            if not nx.is_frozen(self):
                return _by_index(self._pred[name])
            table = self._cached("_inputs", lambda: {dst: _by_index(preds) for dst, preds in self._pred.items()})
        return table[name]

    @property
    def model(self) -> str:
        return self.graph.get("model", "<model>")
