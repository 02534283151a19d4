"""Gridding: which positions of its input map a run of stride-1 dilated windows reads.

``dilated_chains`` follows the footprint of each run of dilated windows on the map where it
starts (the holes of gridding), and ``gridded_chain_ends`` the runs whose holes nothing fills.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..graph import READING_OPS, Graph, Layer, Op
from .receptive_field import ReceptiveField

__all__ = ["DilatedChain", "dilated_chains", "gridded_chain_ends"]

#: Positions per axis beyond which the footprint of a dilated chain is no longer followed.
MAX_FOOTPRINT_SPAN = 1 << 12


@dataclass(frozen=True)
class DilatedChain:
    """What one output of a chain of stride-1 windows, some of them dilated, reads from the chain's input.

    ``start`` is the layer whose output is the chain's input map (the input of its first dilated
    window), ``windows`` the windowed layers of the chain in order, ``rates`` their dilation per
    axis. ``offsets`` holds, per axis, the positions of that map, relative to the output
    position, that one output reads (through any path of the chain).
    """

    start: str
    windows: tuple[str, ...]
    rates: tuple[tuple[int, ...], ...]
    offsets: tuple[frozenset[int], ...]

    @property
    def read(self) -> tuple[int, ...]:
        """Positions read per axis."""
        return tuple(len(o) for o in self.offsets)

    @property
    def span(self) -> tuple[int, ...]:
        """Positions from the first to the last one read, per axis."""
        return tuple(max(o) - min(o) + 1 for o in self.offsets)

    @property
    def step(self) -> tuple[int, ...]:
        """Per axis, the lattice the positions read lie on: gcd of their differences (0 for one position)."""
        return tuple(math.gcd(*(v - min(o) for v in o)) for o in self.offsets)

    @property
    def has_holes(self) -> bool:
        """Some position inside the span is never read."""
        return self.read != self.span

    @property
    def unread_fraction(self) -> Fraction:
        """Exact share of the positions within the span (product over axes) that are never read."""
        return 1 - Fraction(math.prod(self.read), math.prod(self.span))

    @property
    def dilated(self) -> int:
        """Windows of the chain with a dilation above 1 on some axis."""
        return sum(any(d > 1 for d in rate) for rate in self.rates)


#: Ops a chain's footprint passes through unchanged (they work position by position).
_POINTWISE = frozenset({Op.ACTIVATION, Op.NORM})
_MERGING = frozenset({Op.ADD, Op.MUL, Op.CONCAT})
_LOST = object()  # a footprint grown past MAX_FOOTPRINT_SPAN: followed no further until the grid changes


def _taps(layer: Layer, rank: int) -> list[list[int]] | None:
    """Per axis, the input offsets one window reads (``t*d - p``), or ``None`` if malformed."""
    stride = layer.stride or (1,) * rank
    dilation = layer.dilation or (1,) * rank
    pads = layer.pads_begin or (0,) * rank
    if not len(stride) == len(dilation) == len(pads) == rank or any(
            k < 1 or d * (k - 1) >= MAX_FOOTPRINT_SPAN for k, d in zip(layer.kernel, dilation)):
        return None
    return [[t * d - p for t in range(k)] for k, d, p in zip(layer.kernel, dilation, pads)]


def _sumset(offsets: tuple[frozenset[int], ...], taps: list[list[int]]) -> tuple[frozenset[int], ...] | None:
    """Offsets read through one more window; ``None`` once a span would reach ``MAX_FOOTPRINT_SPAN``."""
    if any(max(o) - min(o) + max(t) - min(t) >= MAX_FOOTPRINT_SPAN for o, t in zip(offsets, taps)):
        return None
    return tuple(frozenset(o + t for o in axis for t in tap) for axis, tap in zip(offsets, taps))


def _dense(offsets: tuple[frozenset[int], ...]) -> bool:
    return all(len(o) == max(o) - min(o) + 1 for o in offsets)


def dilated_chains(graph: Graph, fields: Mapping[str, ReceptiveField | None]) -> dict[str, DilatedChain]:
    """The chain of dilated windows each layer's output ends, where its footprint has holes.

    Follows, layer by layer, which positions of the input map of the most recent run of
    stride-1 dilated windows each output reads. A chain starts at a window with a dilation
    above 1 on a map that no such chain reads with holes; stride-1 windows grow its footprint
    (the sum of their taps), position-wise ops pass it on, merges take the union of their
    inputs' footprints (an input without a chain reads its own position, offset 0, or the
    taps of the stride-1 window it ends with; globally pooled inputs are left out). Anything that changes the grid (strides, resizes, transposed
    convolutions, flattening) or fills every hole ends the chain. Only layers whose footprint
    has holes are in the result.

    ``fields`` is :func:`~archlint.analyses.receptive_field.receptive_fields` of the graph.

    Examples
    --------
    Three 3x3 convs with dilation 2 (padding 2) read a 13-position span with step 2 per axis:
    7x7 of 13x13 positions, 120/169 never read.

    >>> from archlint.graph import Graph, Layer, Op
    >>> from archlint.analyses.receptive_field import receptive_fields
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 4, 32, 32)))
    >>> for prev, name in (("x", "a"), ("a", "b"), ("b", "c")):
    ...     g.add_node(name, layer=Layer(name, Op.CONV, "Conv", (1, 4, 32, 32), ((1, 4, 32, 32),), kernel=(3, 3),
    ...                stride=(1, 1), pads_begin=(2, 2), pads_end=(2, 2), dilation=(2, 2)))
    ...     g.add_edge(prev, name, index=0)
    >>> chain = dilated_chains(g, receptive_fields(g))["c"]
    >>> chain.start, chain.windows, chain.read, chain.span, chain.step, chain.unread_fraction
    ('x', ('a', 'b', 'c'), (7, 7), (13, 13), (2, 2), Fraction(120, 169))
    """
    layers = list(graph.layers())
    # every state before the first dilated window (in topological order) is None: start there
    first = next((i for i, layer in enumerate(layers) if layer.op in READING_OPS and _dilated(layer)), len(layers))
    states: dict[str, object] = {}
    for layer in layers[first:]:
        states[layer.name] = _chain_step(graph, layer, states, fields)
    return {name: state for name, state in states.items() if isinstance(state, DilatedChain)}


def _dilated(layer: Layer) -> bool:
    """Some axis of the window has a dilation above 1 and more than one tap: a chain may start here."""
    dilation = layer.dilation
    return bool(dilation) and max(dilation) > 1 and any(d > 1 and k > 1 for d, k in zip(dilation, layer.kernel))


def _chain_step(graph: Graph, layer: Layer, states: Mapping[str, object],
                fields: Mapping[str, ReceptiveField | None]) -> object:
    """Footprint state of ``layer``'s output: a DilatedChain with holes, ``_LOST`` or ``None``."""
    producers = graph.inputs_of(layer.name)
    op = layer.op
    if op in _POINTWISE and len(producers) == 1:
        return states.get(producers[0])
    if op in _MERGING:
        return _merged(graph, producers, states, fields)
    if op is Op.PAD and len(producers) == 1:
        state = states.get(producers[0])
        if not isinstance(state, DilatedChain) or len(layer.pads_begin) != len(state.offsets):
            return state if state is _LOST else None
        offsets = tuple(frozenset(o - p for o in axis) for axis, p in zip(state.offsets, layer.pads_begin))
        return DilatedChain(state.start, state.windows, state.rates, offsets)
    if op not in READING_OPS or not layer.kernel or len(producers) != 1:
        return None
    rank = len(layer.kernel)
    state = states.get(producers[0])
    if state is None and not _dilated(layer):
        return None  # no chain comes in and none starts here (the common case, decided at once)
    dilation = tuple(layer.dilation or (1,) * rank)
    taps = _taps(layer, rank)
    if taps is None or any(s != 1 for s in (layer.stride or (1,) * rank)):
        return None
    if all(tap == [0] for tap in taps):
        return state  # a 1x1 window: position-wise
    if state is _LOST:
        return _LOST
    if state is None or len(state.offsets) != rank:
        if not _dilated(layer):
            return None
        if any(max(t) - min(t) >= MAX_FOOTPRINT_SPAN for t in taps):
            return _LOST
        return DilatedChain(producers[0], (layer.name,), (dilation,), tuple(frozenset(t) for t in taps))
    offsets = _sumset(state.offsets, taps)
    if offsets is None:
        return _LOST
    if _dense(offsets):
        return None
    return DilatedChain(state.start, state.windows + (layer.name,), state.rates + (dilation,), offsets)


def _window_taps(graph: Graph, name: str, rank: int) -> list[frozenset[int]]:
    """Offsets an input without a chain reads around its own position: the taps of the stride-1
    window it ends with (through position-wise ops), else its own position only.

    A sibling branch that reads the chain's start map through an undilated 3x3 window (the
    plain path of a selective-kernel block) fills the holes next to each tap.
    """
    layer = graph.layer(name)
    while layer.op in _POINTWISE and len(graph.inputs_of(layer.name)) == 1:
        layer = graph.layer(graph.inputs_of(layer.name)[0])
    if layer.op in READING_OPS and layer.kernel and len(layer.kernel) == rank \
            and all(s == 1 for s in layer.stride or (1,) * rank):
        taps = _taps(layer, rank)
        if taps is not None:
            return [frozenset(t) for t in taps]
    return [frozenset({0})] * rank


def _merged(graph: Graph, producers: tuple[str, ...], states: Mapping[str, object],
            fields: Mapping[str, ReceptiveField | None]) -> object:
    chains, rank = [], None
    for name in producers:
        field = fields.get(name)
        if field is not None and field.is_global:
            continue  # a global summary (squeeze-excitation scale) reads no particular position
        state = states.get(name)
        if state is _LOST:
            return _LOST
        chains.append((name, state))
        if isinstance(state, DilatedChain):
            rank = len(state.offsets)
    active = [c for _, c in chains if isinstance(c, DilatedChain)]
    if not active or any(len(c.offsets) != rank for c in active):
        return None
    offsets = [set() for _ in range(rank)]
    for name, chain in chains:
        reads = chain.offsets if chain is not None else _window_taps(graph, name, rank)
        for axis in range(rank):
            offsets[axis] |= reads[axis]
    offsets = tuple(frozenset(o) for o in offsets)
    if _dense(offsets):
        return None
    windows = tuple(dict.fromkeys(w for c in active for w in c.windows))
    rate_of = {w: r for c in active for w, r in zip(c.windows, c.rates)}
    return DilatedChain(active[0].start, windows, tuple(rate_of[w] for w in windows), offsets)


def gridded_chain_ends(graph: Graph, chains: Mapping[str, DilatedChain],
                       fields: Mapping[str, ReceptiveField | None]) -> list[DilatedChain]:
    """The chains with holes that the graph leaves unfilled, one per last window, in graph order.

    A chain ends where its map is used by a layer that neither extends it (a later chain
    holding its last window) nor fills its holes: a graph output, a strided window whose taps
    leave holes, a resize (interpolation blends values each computed from one lattice and
    learns nothing across lattices), a transposed convolution. A stride-1 window or a merge
    whose footprint has no holes fills them (Wang et al.'s hybrid dilated convolution), and
    so does a strided window whose taps do; global pooling and flattening read every position.

    ``chains`` is :func:`dilated_chains` of the graph, ``fields`` its receptive fields.
    """
    ends: dict[str, DilatedChain] = {}
    for name, chain in chains.items():
        last = chain.windows[-1]
        if last in ends:
            continue
        consumers = list(graph.successors(name))
        if not consumers or any(not _carried(graph.layer(c), chain, chains.get(c), fields.get(c)) for c in consumers):
            ends[last] = chain
    if len(ends) < 2:
        return list(ends.values())
    order = {layer.name: i for i, layer in enumerate(graph.layers())}
    return sorted(ends.values(), key=lambda c: order[c.windows[-1]])


def _carried(consumer: Layer, chain: DilatedChain, after: DilatedChain | None,
             field: ReceptiveField | None) -> bool:
    """Whether ``consumer`` extends ``chain``, fills its holes or reads the whole map."""
    if after is not None:
        return chain.windows[-1] in after.windows
    rank = len(chain.offsets)
    if consumer.op in _POINTWISE or consumer.op in _MERGING or consumer.op is Op.PAD:
        return True  # their output carries no holes any more: filled (or merged with a full footprint)
    if consumer.op in (Op.GLOBAL_POOL, Op.FLATTEN) or (field is not None and field.is_global):
        return True  # reads every position
    taps = None
    if consumer.op in READING_OPS and consumer.kernel and len(consumer.kernel) == rank:
        taps = _taps(consumer, rank)
    offsets = _sumset(chain.offsets, taps) if taps is not None else None
    return offsets is not None and _dense(offsets)
