"""The canonical graph: one normalisation pass between every frontend and everything else.

Exporters write the same network in different ways: a ``ZeroPad2d`` is a ``Pad`` node for
one exporter and the conv's own padding for another, the legacy ONNX exporter leaves
single-input ``Concat`` nodes, other converters keep ``BatchNormalization`` unfused. Every
graph :func:`archlint.frontends.load_graph` returns goes through :func:`canonical_graph`,
so analyses, rules, reports and ``archlint diff`` see one form of each network.

The pass is a list of small steps (:data:`STEPS`), run in order, each a function that
edits a :class:`Rewrite`. Adding a step is writing one function decorated with
:func:`step`. The steps:

:func:`fold_batchnorm`
    A BatchNorm whose input is a conv read by nothing else joins the conv, as both torch
    ONNX exporters do: the conv takes the BatchNorm's output shape and its learned scale
    and shift (counted on the conv as parameters, the shift as a bias).
:func:`fold_pads`
    A ``Pad`` read only by a conv or pooling window (or by another ``Pad`` of the same
    mode), or only by several windows, becomes part of each window's padding; so does a
    ``Pad`` of a (batch, length) signal read by a window once a reshape adds the channel
    axis (an audio front end's framing). Any mode folds: zeros as the exporters' own fusion
    does, and ``reflect``/``edge``/``wrap`` too, which keep their mode on the window (:attr:`Layer.mode <archlint.graph.Layer.mode>`) so reports can tell them apart.
    A Pad counts no operations, folded or not, so MACs and other-op counts do not change;
    receptive fields do not either (a Pad shifts the field exactly as the same padding on
    the window does).
:func:`splice_identities`
    Layers that pass their one input through unchanged are removed: a ``Concat`` of one
    tensor (the legacy exporter writes them for ``torch.cat([x])``), a ``Pad`` by zero
    pixels, a ``Slice`` from 0 with step 1 that keeps the whole shape (``x[:, :]``). The
    frontends drop the ops that are identities by definition (``Identity``, ``Dropout``,
    ``nn.Identity``, ``.contiguous()``...) while reading the model, before layers are
    named, as the exporters do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

import networkx as nx

from .gc_pause import gc_paused
from .graph import Graph, Layer, Op

__all__ = ["canonical_graph", "Rewrite", "STEPS", "step", "fold_batchnorm", "fold_pads", "splice_identities"]


class Rewrite:
    """The graph being normalised, with the edits steps use; a frozen graph is copied on first edit."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._copied = not nx.is_frozen(graph)

    def _editable(self) -> Graph:
        if not self._copied:
            graph = self.graph.copy()
            graph.graph["outputs"] = list(graph.graph.get("outputs", ()))
            graph.graph["notes"] = list(graph.graph.get("notes", ()))
            self.graph, self._copied = graph, True
        return self.graph

    def layers_of(self, ops: Collection[Op]) -> list[str]:
        """A snapshot of the names of the layers of the classes ``ops``, in topological order (steps may
        remove some as they go, and read each layer anew: an earlier edit may have replaced it)."""
        return [name for name, layer in zip(self.graph.order(), self.graph.layers()) if layer.op in ops]

    def layer(self, name: str) -> Layer:
        return self.graph.layer(name)

    def only_consumer(self, name: str) -> str | None:
        """The one layer reading ``name``, if exactly one does and ``name`` is not a graph output."""
        if name in self.graph.graph.get("outputs", ()) or self.graph.out_degree(name) != 1:
            return None
        return next(iter(self.graph.successors(name)))

    def replace(self, name: str, **changes) -> Layer:
        """Store a copy of layer ``name`` with ``changes`` (``extra`` entries are merged)."""
        graph = self._editable()
        old = graph.layer(name)
        if "extra" in changes:
            changes["extra"] = {**old.extra, **changes["extra"]}
        new = dataclasses.replace(old, **changes)
        graph.nodes[name]["layer"] = new
        return new

    def splice(self, name: str) -> None:
        """Remove single-input layer ``name``: its consumers (and graph outputs) read its producer instead."""
        graph = self._editable()
        (producer, link), = graph.pred[name].items()
        for consumer, edge in list(graph.succ[name].items()):
            new = {**edge, "output": link.get("output", 0)}
            if "tensor" in link:
                new["tensor"] = link["tensor"]
            old = graph.get_edge_data(producer, consumer)
            if old is None or new.get("index", 0) < old.get("index", 0):
                graph.add_edge(producer, consumer, **new)
        graph.remove_node(name)
        outputs = graph.graph.get("outputs", [])
        graph.graph["outputs"] = list(dict.fromkeys(producer if o == name else o for o in outputs))

    def note(self, text: str) -> None:
        self._editable().graph["notes"].append(text)


#: The steps, in the order they run.
STEPS: list[Callable[[Rewrite], None]] = []


def step(function: Callable[[Rewrite], None]) -> Callable[[Rewrite], None]:
    """Register ``function`` as the next step of the canonical pass."""
    STEPS.append(function)
    return function


@gc_paused
def canonical_graph(graph: Graph) -> Graph:
    """``graph`` in canonical form (the same object when no step applies; a frozen graph is never edited)."""
    rewrite = Rewrite(graph)
    for run in STEPS:
        run(rewrite)
    return rewrite.graph


def _single_input(rewrite: Rewrite, name: str) -> str | None:
    """The producer of ``name`` if it has exactly one, read at output 0."""
    preds = rewrite.graph.pred[name]
    if len(preds) != 1:
        return None
    producer, edge = next(iter(preds.items()))
    return producer if edge.get("output", 0) == 0 else None


def _is_batchnorm(layer: Layer) -> bool:
    """ONNX ``BatchNormalization``, torch ``BatchNorm*d`` modules and ``batch_norm`` functions/ATen ops."""
    if layer.op is not Op.NORM:
        return False
    name = layer.source_op.lower()
    return "batchnorm" in name or "batch_norm" in name


@step
def fold_batchnorm(rewrite: Rewrite) -> None:
    """Fold a BatchNorm into the conv before it when the conv feeds nothing else."""
    folded = 0
    for name in rewrite.layers_of((Op.NORM,)):
        layer = rewrite.layer(name)
        if not _is_batchnorm(layer):
            continue
        conv = _single_input(rewrite, name)
        if conv is None or rewrite.layer(conv).op is not Op.CONV or rewrite.only_consumer(conv) != name:
            continue
        before = rewrite.layer(conv)
        rewrite.replace(conv, param_shapes=before.param_shapes + layer.param_shapes,
                        output_shape=layer.output_shape, extra={"folded": name})
        rewrite.splice(name)
        folded += 1
    if folded:
        rewrite.note(f"{folded} BatchNorm layer(s) directly after a conv folded into it, as the ONNX exporters "
                     "do; their parameters are counted on the conv")


#: Layers whose padding a Pad before them can become.
_PADDED_WINDOWS = (Op.CONV, Op.MAX_POOL, Op.AVG_POOL)


def _mode(layer: Layer) -> str:
    return layer.mode if layer.mode and layer.mode != "constant" else ""


def _spatial_pad(layer: Layer) -> bool:
    """A Pad of the spatial axes only, by non-negative amounts (no crop, no channel padding)."""
    if not layer.pads_begin or min(layer.pads_begin + layer.pads_end) < 0:
        return False
    x = layer.input_shapes[0] if layer.input_shapes else None
    out = layer.output_shape
    return x is None or out is None or (len(x) == len(out) and x[:2] == out[:2])


@step
def fold_pads(rewrite: Rewrite) -> None:
    """Fold a Pad into the window (or same-mode Pad) that alone reads it, or into every window reading it."""
    for name in rewrite.layers_of((Op.PAD,)):
        pad = rewrite.layer(name)
        if len(rewrite.graph.pred[name]) != 1:
            continue  # (any output of its producer: a Pad of one chunk of a split folds too)
        if _fold_through_channel_axis(rewrite, name, pad) or not _spatial_pad(pad):
            continue
        targets = _pad_readers(rewrite, name)
        rank = len(pad.pads_begin)
        if not targets or not all(_folds_into(pad, rewrite.layer(t), rank) for t in targets):
            continue
        for target in targets:
            into = rewrite.layer(target)
            begin = tuple(a + b for a, b in zip(into.pads_begin or (0,) * rank, pad.pads_begin))
            end = tuple(a + b for a, b in zip(into.pads_end or (0,) * rank, pad.pads_end))
            shapes = (pad.input_shapes[0] if pad.input_shapes else None,) + tuple(into.input_shapes[1:])
            rewrite.replace(target, pads_begin=begin, pads_end=end, input_shapes=shapes,
                            mode=_mode(pad) or into.mode)
        rewrite.splice(name)


def _fold_through_channel_axis(rewrite: Rewrite, name: str, pad: Layer) -> bool:
    """Fold a Pad of a (batch, length) signal into the window that reads it once a reshape has
    added the channel axis (``F.pad(x, ...)`` then ``x.unsqueeze(1)`` then ``conv1d``: an audio
    front end's framing); the reshape then reads the unpadded signal. Whether it applied."""
    x, padded = (pad.input_shapes[0] if pad.input_shapes else None), pad.output_shape
    if not x or not padded or len(x) != 2 or len(pad.pads_begin) != 1:
        return False
    reshape = rewrite.only_consumer(name)
    window = reshape and rewrite.only_consumer(reshape)
    if not window or rewrite.layer(reshape).op is not Op.RESHAPE \
            or rewrite.layer(reshape).output_shape != (padded[0], 1, padded[1]) \
            or rewrite.graph.edges[reshape, window].get("index", 0) != 0 \
            or not _folds_into(pad, rewrite.layer(window), 1) or rewrite.layer(window).op is Op.PAD:
        return False
    into = rewrite.layer(window)
    signal = (x[0], 1, x[1])
    rewrite.replace(reshape, input_shapes=(x,), output_shape=signal)
    rewrite.replace(window, pads_begin=(pad.pads_begin[0] + (into.pads_begin or (0,))[0],),
                    pads_end=(pad.pads_end[0] + (into.pads_end or (0,))[0],),
                    input_shapes=(signal,) + tuple(into.input_shapes[1:]), mode=_mode(pad) or into.mode)
    rewrite.splice(name)
    return True


def _pad_readers(rewrite: Rewrite, name: str) -> list[str] | None:
    """What a Pad folds into: its one consumer, or every consumer when all are windows (a padded map
    that several convs read); each must read it as its first input."""
    graph = rewrite.graph
    if name in graph.graph.get("outputs", ()) or not graph.out_degree(name):
        return None
    targets = list(graph.successors(name))
    if any(graph.edges[name, t].get("index", 0) != 0 for t in targets):
        return None
    if len(targets) > 1 and any(rewrite.layer(t).op not in _PADDED_WINDOWS for t in targets):
        return None
    return targets


def _folds_into(pad: Layer, into: Layer, rank: int) -> bool:
    if into.op is Op.PAD:
        return _mode(into) == _mode(pad) and len(into.pads_begin) == rank
    return into.op in _PADDED_WINDOWS and len(into.kernel) == rank


#: Layers that can pass their input through unchanged.
_MAYBE_IDENTITY = frozenset({Op.CONCAT, Op.PAD, Op.SLICE})


def _is_identity(layer: Layer) -> bool:
    """Whether a layer with one input passes it through unchanged (see :func:`splice_identities`)."""
    if layer.op not in _MAYBE_IDENTITY:
        return False
    x = layer.input_shapes[0] if len(layer.input_shapes) == 1 else None
    same_shape = x is not None and x == layer.output_shape
    if layer.op is Op.CONCAT:  # one tensor, not torch.cat([x, x]) (one producer read twice)
        return len(layer.input_shapes) <= 1 and (x is None or layer.output_shape is None or same_shape)
    if layer.op is Op.PAD:
        return same_shape and bool(layer.pads_begin) and not any(layer.pads_begin + layer.pads_end)
    if layer.op is Op.SLICE:
        return same_shape and bool(layer.starts) and not any(layer.starts) and all(s == 1 for s in layer.stride)
    return False


@step
def splice_identities(rewrite: Rewrite) -> None:
    """Remove single-input layers that pass their input through unchanged."""
    for name in rewrite.layers_of(_MAYBE_IDENTITY):
        if _is_identity(rewrite.layer(name)) and len(rewrite.graph.pred[name]) == 1:
            rewrite.splice(name)
