"""How fast the sampling grid coarsens: the factor by which each layer multiplies the effective stride.

``stride_steps`` gives how much each layer that changes it multiplies the effective stride
(jump) of the receptive field, per axis, for the layers whose grid reaches a model output
(not the keys and values of attention).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from ..graph import INPUT_OPS, Graph, Op
from .receptive_field import ReceptiveField, grid_operand

__all__ = ["StrideStep", "stride_steps"]

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
        if before == after or graph.layer(name).op in INPUT_OPS:
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
