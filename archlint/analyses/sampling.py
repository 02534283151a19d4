"""Which input positions a strided window reads, and how fast the sampling grid coarsens.

``window_coverage`` counts, per spatial axis, the real input positions (padding excluded)
that at least one window of a convolution or pooling layer reads, and sorts the unread
ones into *gaps* (missed even if the windows went on past the end: stride larger than
the dilated kernel, or dilation holes) and the *edge* (missed only because the last
window stops early). ``stride_steps`` gives how much each layer that changes it multiplies
the effective stride (jump) of the receptive field, per axis, for the layers whose grid
reaches a model output (not the keys and values of attention). ``dilated_chains`` follows
which positions of its input map a run of stride-1 dilated windows reads (the holes of
gridding), and ``gridded_chain_ends`` the runs whose holes nothing fills.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ..graph import Graph, Layer, Op
from .receptive_field import ReceptiveField, grid_operand

__all__ = ["AxisCoverage", "WindowCoverage", "axis_coverage", "window_coverage", "window_coverages",
           "covered_windows", "unread_windows", "StrideStep", "stride_steps", "DilatedChain", "dilated_chains", "gridded_chain_ends"]

#: Graph inputs, as a set: a set test is a hash lookup, reading ``Op.INPUT`` goes through the enum's hook.
_SOURCES = frozenset({Op.INPUT})
#: Windowed layers whose windows read their input (a transposed conv writes instead).
_READING_OPS = frozenset({Op.CONV, Op.MAX_POOL, Op.AVG_POOL})


@dataclass(frozen=True)
class AxisCoverage:
    """Input positions along one axis: ``size`` real ones, ``read`` by some window.

    ``gap`` unread positions would stay unread however far the windows went on;
    ``edge`` unread positions at the end would be read by windows past the last one.
    ``size == read + gap + edge``.
    """

    size: int
    read: int
    gap: int
    edge: int

    @property
    def unread(self) -> int:
        return self.size - self.read


@dataclass(frozen=True)
class WindowCoverage:
    """Coverage of a layer's input, one :class:`AxisCoverage` per spatial axis."""

    axes: tuple[AxisCoverage, ...]

    @property
    def positions(self) -> int:
        """Real input positions (product over axes)."""
        return math.prod(a.size for a in self.axes)

    @property
    def read(self) -> int:
        """Positions read by at least one window (the windows form a product over axes)."""
        return math.prod(a.read for a in self.axes)

    @property
    def unread(self) -> int:
        return self.positions - self.read

    @property
    def has_gaps(self) -> bool:
        """Some axis has positions that no window would read however far the windows went on."""
        for a in self.axes:  # a loop, not any() over a generator: rules ask this of every windowed layer
            if a.gap:
                return True
        return False

    @property
    def unread_fraction(self) -> Fraction:
        """Exact fraction of real input positions that no window reads."""
        return Fraction(self.unread, self.positions) if self.positions else Fraction(0)


def _read_marks(size: int, kernel: int, stride: int, pad_begin: int, dilation: int, windows: int) -> int:
    """Number of positions in ``[0, size)`` read by windows ``0 .. windows-1``.

    Each tap reads an arithmetic progression of step ``stride``; progressions with the same
    residue modulo ``stride`` are merged as intervals, so memory and time grow with the
    kernel, not with ``size`` (hostile models declare sizes of 2^40).
    """
    spans: dict[int, list[tuple[int, int]]] = {}
    for tap in range(kernel):
        first = tap * dilation - pad_begin  # position read by window 0 at this tap
        lo = -(first // stride) if first < 0 else 0  # first window whose tap is inside
        hi = min(windows - 1, (size - 1 - first) // stride) if size - 1 - first >= 0 else -1
        if lo <= hi:
            a = first + lo * stride
            r = a % stride
            spans.setdefault(r, []).append(((a - r) // stride, (a - r) // stride + hi - lo))
    count = 0
    for intervals in spans.values():
        intervals.sort()
        cur_lo, cur_hi = intervals[0]
        for lo, hi in intervals[1:]:
            if lo > cur_hi + 1:
                count += cur_hi - cur_lo + 1
                cur_lo, cur_hi = lo, hi
            elif hi > cur_hi:
                cur_hi = hi
        count += cur_hi - cur_lo + 1
    return count


#: Kernels wider than this (taps per axis) are not analysed for coverage: no real layer has them.
MAX_COVERAGE_TAPS = 1 << 16


def axis_coverage(size: int, kernel: int, stride: int, pad_begin: int, dilation: int,
                  windows: int) -> AxisCoverage:
    """Coverage of one axis of length ``size`` by ``windows`` windows.

    Window ``w`` reads positions ``w*stride - pad_begin + j*dilation`` for ``j < kernel``;
    positions outside ``[0, size)`` are padding and do not count.

    Examples
    --------
    A 1x1 stride-2 conv on 56 positions reads every other one (ResNet's downsample):

    >>> axis_coverage(56, kernel=1, stride=2, pad_begin=0, dilation=1, windows=28)
    AxisCoverage(size=56, read=28, gap=28, edge=0)

    A 3x3 stride-2 conv without padding on 224 positions gives 111 windows; the last
    position is never read, though a further window would have read it:

    >>> axis_coverage(224, kernel=3, stride=2, pad_begin=0, dilation=1, windows=111)
    AxisCoverage(size=224, read=223, gap=0, edge=1)
    """
    read = _read_marks(size, kernel, stride, pad_begin, dilation, windows)
    reach = size - 1 + pad_begin  # windows starting at or before the last real position
    grid = max(windows, reach // stride + 1 if reach >= 0 else 0)
    continued = _read_marks(size, kernel, stride, pad_begin, dilation, grid)
    return AxisCoverage(size, read, size - continued, continued - read)


def window_coverage(layer: Layer) -> WindowCoverage | None:
    """Coverage of the input of a conv or pooling layer; ``None`` for other layers or unknown shapes.

    Examples
    --------
    >>> from archlint.graph import Layer, Op
    >>> down = Layer("layer2.0.downsample.0", Op.CONV, "Conv", (1, 128, 28, 28), ((1, 64, 56, 56),),
    ...              kernel=(1, 1), stride=(2, 2), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1))
    >>> cov = window_coverage(down)
    >>> cov.read, cov.positions, cov.unread_fraction
    (784, 3136, Fraction(3, 4))
    """
    if layer.op not in _READING_OPS or not layer.kernel:
        return None
    x = layer.input_shapes[0] if layer.input_shapes else None
    out = layer.output_shape
    rank = len(layer.kernel)
    if x is None or out is None or len(x) != rank + 2 or len(out) != rank + 2:
        return None
    if max(layer.kernel) > MAX_COVERAGE_TAPS:
        return None
    return _coverage(tuple(x[2:]), tuple(layer.kernel), tuple(layer.stride), tuple(layer.pads_begin or (0,) * rank),
                     tuple(layer.dilation or (1,) * rank), tuple(out[2:]))


def window_coverages(graph: Graph) -> dict[str, WindowCoverage | None]:
    """:func:`window_coverage` of every layer (``None`` for layers without windows)."""
    # window_coverage's own first test, without a call for every other layer
    return {layer.name: window_coverage(layer) if layer.op in _READING_OPS else None for layer in graph.layers()}


@lru_cache(maxsize=4096)
def _coverage(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], pads: tuple[int, ...],
              dilation: tuple[int, ...], windows: tuple[int, ...]) -> WindowCoverage:
    """Coverage of one window configuration; models repeat a few configurations many times."""
    return WindowCoverage(tuple(axis_coverage(*args) for args in zip(sizes, kernel, stride, pads, dilation, windows)))


def covered_windows(graph: Graph, coverages: Mapping[str, WindowCoverage | None],
                    ops: Collection[Op]) -> Iterator[tuple[Layer, WindowCoverage]]:
    """The layers whose op is in ``ops`` and whose input coverage is known, with it, in graph order.

    ``coverages`` maps layer names to :func:`window_coverage` (the engine's
    ``"window_coverages"`` analysis).
    """
    for layer in graph.layers():
        if layer.op in ops:
            coverage = coverages.get(layer.name)
            if coverage is not None:
                yield layer, coverage


def unread_windows(graph: Graph, coverages: Mapping[str, WindowCoverage | None], ops: Collection[Op],
                   limit: float) -> Iterator[tuple[Layer, WindowCoverage]]:
    """The layers of ``ops`` whose windows leave gaps and never read more than ``limit`` of their input.

    The check a conv rule and a pooling rule share: gaps between windows (not positions
    lost only at the end edge) and the exact unread fraction of the real input positions
    compared with the rule's limit, in graph order.
    """
    for layer in graph.layers():  # covered_windows inlined: one generator, not two, per windowed layer
        if layer.op in ops:
            coverage = coverages.get(layer.name)
            if coverage is not None and coverage.has_gaps and coverage.unread_fraction > limit:
                yield layer, coverage


@dataclass(frozen=True)
class StrideStep:
    """How one layer changes the effective stride of its output, per spatial axis.

    ``before`` is the coarsest effective stride among its inputs, ``after`` that of its
    output, ``factor`` their ratio and ``extent`` the output length along each axis.
    """

    before: tuple[Fraction, ...]
    after: tuple[Fraction, ...]
    factor: tuple[Fraction, ...]
    extent: tuple[int, ...]


def _ratio(num, den) -> int | Fraction:
    """``num / den`` exactly: an int when it divides (the common case), else a Fraction."""
    if isinstance(num, int) and isinstance(den, int) and den and num % den == 0:
        return num // den
    return Fraction(num) / den


def stride_steps(graph: Graph, fields: dict[str, ReceptiveField | None]) -> dict[str, StrideStep]:
    """Stride step of every layer that changes the effective stride (a factor other than 1 on some axis).

    ``fields`` is the result of :func:`~archlint.analyses.receptive_field.receptive_fields`.
    Only layers whose input and output fields are known and local count: layers after
    global pooling, and layers that change which tensor axes are spatial, have no step.
    Nor do layers whose grid reaches no model output: those from which every path goes
    through an operand of a product that does not give the result its positions (the
    keys and values of attention, whose result takes the queries' positions, see
    :func:`~archlint.analyses.receptive_field.grid_operand`; or a matrix computed from the
    input and applied to a map), such as the strided conv that shrinks only the keys and
    values of spatial-reduction attention, or the pools that summarise rows and columns
    into bilinear attention's mixing matrices.

    Examples
    --------
    >>> from archlint.analyses.receptive_field import receptive_fields
    >>> from archlint.graph import Graph, Layer, Op
    >>> g = Graph()
    >>> g.add_node("x", layer=Layer("x", Op.INPUT, "input", (1, 3, 32, 32)))
    >>> g.add_node("stem", layer=Layer("stem", Op.CONV, "Conv", (1, 8, 8, 8), ((1, 3, 32, 32),),
    ...     kernel=(4, 4), stride=(4, 4), pads_begin=(0, 0), pads_end=(0, 0), dilation=(1, 1)))
    >>> g.add_edge("x", "stem", index=0)
    >>> step = stride_steps(g, receptive_fields(g))["stem"]
    >>> [int(f) for f in step.factor], [int(s) for s in step.after]
    ([4, 4], [4, 4])
    """
    steps: dict[str, StrideStep] = {}
    reaching = None  # computed when the first layer that changes the stride asks
    # by name: the first read of a layer's attributes is a cache miss per layer on large graphs, and only
    # the few layers that change the stride need their op (graph inputs, having no producers, stop earlier)
    for name in graph.order():
        field = fields.get(name)
        if field is None or field.is_global:
            continue
        producers = graph.inputs_of(name)
        if len(producers) == 1:
            source = fields.get(producers[0])
            if source is field or source is None or source.is_global or source.positions != field.positions:
                continue  # passed through unchanged (activations, norms), or no local field before
            before = source.stride
        else:
            aligned = [f for f in map(fields.get, producers) if f is not None and not f.is_global]
            if not aligned or any(f.positions != field.positions for f in aligned):
                continue
            before = tuple(max(f.stride[a] for f in aligned) for a in range(len(field.extent)))
        after = field.stride
        if before == after or graph.layer(name).op in _SOURCES:
            continue
        if reaching is None:
            reaching = _grid_reaches_output(graph, fields)
        if name not in reaching:
            continue
        steps[name] = StrideStep(before, after, tuple(_ratio(b, a) for a, b in zip(before, after)),
                                       tuple(field.extent))
    return steps


def _contracted_operands(graph: Graph, fields: Mapping[str, ReceptiveField | None], name: str) -> set[str]:
    """Producers of ``name`` that do not give it its positions: the keys/values of a position
    product, or a matrix computed from the input and applied to a map.

    The operands are taken as :func:`~archlint.analyses.receptive_field.receptive_fields`
    takes them (producers with a field, in input order); empty unless ``name`` is a product
    of two activations whose result keeps the positions of one operand: the queries of
    attention (:func:`~archlint.analyses.receptive_field.grid_operand`), or the only operand
    that holds positions (bilinear attention's ``P @ X @ Q``, whose mixing matrices hold none).
    """
    layer, field = graph.layer(name), fields.get(name)
    if layer.op not in (Op.LINEAR, Op.MATMUL) or field is None or not field.has_positions:
        return set()
    operands = [p for p in graph.inputs_of(name) if fields.get(p) is not None]
    inputs = [fields[p] for p in operands]
    holding = [i for i, f in enumerate(inputs) if f.has_positions]
    if len(inputs) < 2 or not holding:
        return set()
    kept = holding[0] if len(holding) == 1 else grid_operand(layer, inputs) if field.is_global else None
    return set() if kept is None else {p for i, p in enumerate(operands) if i != kept}


def _grid_reaches_output(graph: Graph, fields: Mapping[str, ReceptiveField | None]) -> set[str]:
    """Layers from which some path reaches a model output other than as a contracted operand.

    Model outputs (and layers nobody reads) reach; a layer reaches when some consumer that
    reaches takes it as anything but the keys/values of a position product.
    """
    outputs = set(graph.graph.get("outputs", ()))
    contracted = {}  # only products of two position-holding activations contract an operand
    for layer in graph.layers():
        if layer.op is Op.LINEAR or layer.op is Op.MATMUL:
            operands = _contracted_operands(graph, fields, layer.name)
            if operands:
                contracted[layer.name] = operands
    reaching: set[str] = set()
    succs = graph._succ  # a plain dict: this loop runs once per layer
    for name in reversed(graph.order()):
        consumers = succs[name]
        if name in outputs or not consumers:
            reaching.add(name)
        elif not contracted:
            if not reaching.isdisjoint(consumers):
                reaching.add(name)
        elif any(c in reaching and name not in contracted.get(c, ()) for c in consumers):
            reaching.add(name)
    return reaching


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
    first = next((i for i, layer in enumerate(layers) if layer.op in _READING_OPS and _dilated(layer)), len(layers))
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
    if op not in _READING_OPS or not layer.kernel or len(producers) != 1:
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
    if layer.op in _READING_OPS and layer.kernel and len(layer.kernel) == rank \
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
    if consumer.op in _READING_OPS and consumer.kernel and len(consumer.kernel) == rank:
        taps = _taps(consumer, rank)
    offsets = _sumset(chain.offsets, taps) if taps is not None else None
    return offsets is not None and _dense(offsets)
