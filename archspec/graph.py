"""Resolve a spec's layers into a graph: references, order, shapes, parameters.

Everything here is backend-neutral; the backends build exactly the nodes,
shapes and parameters this module computes, in this order.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, field
from typing import TypeVar

from archspec.checks import training_problems
from archspec.spec.common import Shape
from archspec.spec.document import Spec
from archspec.spec.layers import LAYER_TYPES, Layer, LayerBase, LayerShapeError, ParamSpec, layer_type_name
from archspec.spec.source import Location, suggest
from archspec.spec.training import CROSS_ENTROPY_LOSSES

LayerT = TypeVar("LayerT", bound=LayerBase)


@dataclass(frozen=True)
class Node:
    """One layer placed in the graph.

    ``inputs`` name tensors: model input names or other nodes' ids. ``activation``
    is the activation a backend applies after the layer's own computation
    (``None`` for layers that have none); ``pre_activation`` is then available as
    the tensor ``"{id}:pre"``. ``input_masked`` says which inputs carry a mask (padded
    steps) and ``masked`` whether the output does, by the layer type's ``mask_rule``
    (``docs/semantics.md``, "Masks").
    """

    id: str
    index: int
    layer: Layer
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    params: tuple[ParamSpec, ...]
    input_masked: tuple[bool, ...] = ()
    masked: bool = False

    @property
    def type(self) -> str:
        return self.layer.type

    @property
    def activation(self) -> str | None:
        """The layer's ``activation`` where it acts on the layer's whole result, as the
        layer class says: after its own computation (``activation_after``: dense, conv2d)
        or as all of it (``activation_only``: the activation layer, whose input is then
        the pre-activation). ``None`` otherwise: layers without one, and simple_rnn,
        whose activation acts inside the recurrence."""
        if self.layer.activation_after or self.layer.activation_only:
            return getattr(self.layer, "activation", None)
        return None

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params)

    @property
    def mask_input(self) -> int:
        """Which input's mask the layer honours, if its rule is ``consume`` (attention: the key's)."""
        return self.layer.mask_input(len(self.inputs))

    @property
    def mask_source(self) -> str | None:
        """How the mask of this node's output is computed from its layer type's ``mask_rule``
        (the reference and every backend follow it): ``None``, no mask; ``"create"``, the layer
        makes it; ``"input"``, the first input's; ``"all"``, valid where every masked input is
        valid; ``"steps"``, a concatenation along the step axis: the inputs' masks concatenated
        (an input without one counts as valid everywhere)."""
        if not self.masked:
            return None
        rule = self.layer.mask_rule
        if rule == "create":
            return "create"
        if rule != "combine":
            return "input"
        axis = getattr(self.layer, "axis", None)
        if axis is not None and axis % len(self.input_shapes[0]) == 0:
            return "steps"
        return "all"

    def layer_as(self, cls: builtins.type[LayerT]) -> LayerT:
        """The node's layer as the class a builder for its type handles (``node.layer_as(Dense)``).

        Builders are looked up by ``node.type``, so a mismatch is a wrong registry entry."""
        layer = self.layer
        if not isinstance(layer, cls):
            raise TypeError(f"layer '{self.id}' is a {self.type} layer, not {cls.__name__}")
        return layer

    def canonical_name(self, param: ParamSpec) -> str:
        return f"{self.id}.{param.name}"


@dataclass(frozen=True)
class Head:
    """What the loss reads for one output.

    ``logits`` names the tensor the loss is computed from: the output itself, or
    the pre-activation tensor when the output ends in softmax/sigmoid and the
    loss is a cross-entropy (so it is computed from logits, stably).
    ``activation`` maps logits to probabilities (``linear`` when not a classifier).
    """

    output: str
    logits: str
    from_logits: bool
    activation: str


@dataclass(frozen=True)
class ModelGraph:
    """A validated spec, resolved: nodes in topological order with shapes and parameters."""

    spec: Spec
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    heads: tuple[Head, ...]
    problems: tuple = field(default=(), repr=False)

    @property
    def node_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @property
    def parameters(self) -> dict[str, ParamSpec]:
        """Canonical parameter name -> its spec, in build order."""
        return {n.canonical_name(p): p for n in self.nodes for p in n.params}

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.parameters.values())

    @property
    def trainable_param_count(self) -> int:
        return sum(p.size for p in self.parameters.values() if p.trainable)

    def output_shape(self, name: str) -> Shape:
        if name in self.spec.inputs:
            return tuple(self.spec.inputs[name].shape)
        return self.node_by_id[name].output_shape


class GraphProblems(Exception):
    """Raised with every (location, message) found while resolving the graph."""

    def __init__(self, problems: list[tuple[Location, str]]):
        self.problems = problems
        super().__init__("; ".join(m for _, m in problems))


def _default_ids(spec: Spec) -> list[str]:
    taken = {layer.id for layer in spec.layers if layer.id} | set(spec.inputs)
    counters: dict[str, int] = {}
    ids = []
    for layer in spec.layers:
        if layer.id:
            ids.append(layer.id)
            continue
        while True:
            counters[layer.type] = counters.get(layer.type, 0) + 1
            candidate = f"{layer.type}_{counters[layer.type]}"
            if candidate not in taken:
                break
        taken.add(candidate)
        ids.append(candidate)
    return ids


def _suggest(word: str, options) -> str:
    hint = suggest(word, options)
    return f"; {hint}" if hint else ""


def resolve(spec: Spec) -> ModelGraph:
    """Resolve references, order the layers, infer every shape and parameter.

    Raises ``GraphProblems`` with every problem found (located by spec path).
    """
    problems: list[tuple[Location, str]] = []
    ids = _default_ids(spec)
    input_names = list(spec.inputs)

    seen: dict[str, int] = {}
    for index, layer in enumerate(spec.layers):
        if layer.id is None:
            continue
        if layer.id in spec.inputs:
            problems.append((("layers", index, "id"), f"layer id '{layer.id}' is already the name of an input"))
        elif layer.id in seen:
            problems.append(
                (("layers", index, "id"), f"duplicate layer id '{layer.id}' (first used by layers[{seen[layer.id]}])")
            )
        else:
            seen[layer.id] = index

    known = set(input_names) | set(ids)
    sources: list[tuple[str, ...]] = []
    for index, layer in enumerate(spec.layers):
        if layer.inputs is not None:
            refs = tuple(layer.inputs)
            for k, ref in enumerate(refs):
                if ref not in known:
                    problems.append(
                        (("layers", index, "inputs", k), f"unknown input or layer id '{ref}'{_suggest(ref, known)}")
                    )
        elif index > 0:
            refs = (ids[index - 1],)
        elif len(input_names) == 1:
            refs = (input_names[0],)
        else:
            refs = ()
            problems.append(
                (
                    ("layers", 0),
                    f"the first layer must name its 'inputs' when the model has several inputs ({', '.join(input_names)})",
                )
            )
        lowest, highest = layer.arity
        if refs and (len(refs) < lowest or (highest is not None and len(refs) > highest)):
            expected = f"{lowest}" if lowest == highest else f"at least {lowest}"
            problems.append(
                (("layers", index, "inputs"), f"{layer.type} takes {expected} input(s), received {len(refs)}")
            )
        sources.append(refs)

    outputs = tuple(spec.outputs) if spec.outputs else (ids[-1],)
    for k, name in enumerate(spec.outputs or ()):
        if name not in ids:
            problems.append((("outputs", k), f"unknown layer id '{name}'{_suggest(name, ids)}"))
    if problems:
        raise GraphProblems(problems)

    order = _topological_order(ids, sources, problems)
    if problems:
        raise GraphProblems(problems)

    shapes: dict[str, Shape] = {name: tuple(inp.shape) for name, inp in spec.inputs.items()}
    # Tensor -> the id of the layer that marked its padded steps (absent: no mask). Inputs carry none.
    mask_origins: dict[str, str] = {}
    nodes = []
    for index in order:
        layer, node_id, refs = spec.layers[index], ids[index], sources[index]
        if any(ref not in shapes for ref in refs):
            continue  # an earlier problem left an input without a shape
        input_shapes = tuple(shapes[ref] for ref in refs)
        problem = _check_input_kinds(spec, layer, refs)
        if problem:
            problems.append((("layers", index, layer.type), problem))
            continue
        try:
            output_shape = tuple(layer.output_shape(list(input_shapes)))
            params = tuple(layer.parameters(list(input_shapes)))
        except LayerShapeError as error:
            problems.append((("layers", index, layer.type), f"layer '{node_id}': {error}"))
            continue
        input_masked = tuple(ref in mask_origins for ref in refs)
        problem = _mask_problem(node_id, layer, refs, mask_origins)
        if problem:
            problems.append((("layers", index, layer.type), problem))
            continue
        origin = _mask_origin(node_id, layer, refs, mask_origins)
        if origin is not None:
            mask_origins[node_id] = origin
        shapes[node_id] = output_shape
        nodes.append(
            Node(node_id, index, layer, refs, input_shapes, output_shape, params, input_masked, origin is not None)
        )

    used = {ref for refs in sources for ref in refs} | set(outputs)
    for index, node_id in enumerate(ids):
        if node_id not in used:
            problems.append(
                (
                    ("layers", index),
                    f"layer '{node_id}' is not used by any layer or output (list it in 'outputs' or remove it)",
                )
            )
    for name in input_names:
        if name not in used:
            problems.append((("inputs", name), f"input '{name}' is not used by any layer"))
    if spec.training is not None:
        for name in outputs:
            if name in mask_origins:
                problems.append(
                    (
                        ("layers", ids.index(name)),
                        f"output '{name}' carries a mask (padding marked by '{mask_origins[name]}') and the loss "
                        "cannot skip padded steps: expected an output without a mask, received a masked "
                        "sequence (end with a recurrent layer without return_sequences, or a global pooling)",
                    )
                )
    if problems:
        raise GraphProblems(problems)

    graph = ModelGraph(spec, tuple(nodes), outputs, ())
    heads = tuple(_head(graph, name) for name in outputs)
    graph = ModelGraph(spec, tuple(nodes), outputs, heads)
    problems.extend(training_problems(graph))
    if problems:
        raise GraphProblems(problems)
    return graph


def _topological_order(ids, sources, problems) -> list[int]:
    position = {node_id: i for i, node_id in enumerate(ids)}
    pending = {i: {position[r] for r in refs if r in position} for i, refs in enumerate(sources)}
    order: list[int] = []
    while pending:
        ready = sorted(i for i, deps in pending.items() if not deps)
        if not ready:
            cycle = sorted(pending)
            names = ", ".join(ids[i] for i in cycle)
            problems.append((("layers", cycle[0], "inputs"), f"the layers {names} form a cycle"))
            return order
        for i in ready:
            order.append(i)
            del pending[i]
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def _check_input_kinds(spec: Spec, layer: Layer, refs) -> str | None:
    int_refs = [r for r in refs if r in spec.inputs and spec.inputs[r].dtype != "float"]
    if layer.integer_input:
        bad = [r for r in refs if r not in spec.inputs or spec.inputs[r].dtype == "float"]
        if bad:
            return f"{layer.type} expects an integer model input (dtype int32 or int64), received '{bad[0]}'"
    elif int_refs:
        readers = " or ".join(layer_type_name(cls) for cls in LAYER_TYPES if cls.integer_input)
        return f"integer input '{int_refs[0]}' can only feed an {readers} layer, not {layer.type}"
    return None


def _mask_problem(node_id: str, layer: Layer, refs, mask_origins: dict[str, str]) -> str | None:
    """A masked input reaching a layer whose type cannot honour a mask (rule ``refuse``)."""
    masked = [ref for ref in refs if ref in mask_origins]
    if layer.mask_rule != "refuse" or not masked:
        return None
    honouring = sorted(layer_type_name(cls) for cls in LAYER_TYPES if cls.mask_rule == "consume")
    return (
        f"layer '{node_id}' ({layer.type}) cannot honour a mask: expected an input without one, received "
        f"'{masked[0]}', whose padded steps were marked by '{mask_origins[masked[0]]}' "
        f"(read the sequence with one of {', '.join(honouring)} first)"
    )


def _mask_origin(node_id: str, layer: Layer, refs, mask_origins: dict[str, str]) -> str | None:
    """The layer that marked the padded steps of this layer's output, or None when it carries no
    mask: the one rule of each layer type (``LayerBase.mask_rule``)."""
    incoming = [mask_origins[ref] for ref in refs if ref in mask_origins]
    rule = layer.mask_rule
    if rule == "create":
        return node_id if layer.creates_mask() else None
    if rule == "combine":
        return incoming[0] if incoming else None
    if rule == "pass" or (rule == "consume" and layer.keeps_steps()):
        return mask_origins.get(refs[0])
    return None


def _head(graph: ModelGraph, output: str) -> Head:
    spec = graph.spec
    node = graph.node_by_id[output]
    # A mapping that leaves the output out is refused by the checks (archspec.output_checks).
    loss = spec.training.loss_of(output) if spec.training and spec.training.names_loss(output) else None
    activation = node.activation or "linear"
    logits = f"{output}:pre" if node.activation is not None else output
    if node.layer.activation_only:
        logits = node.inputs[0]
    if loss in CROSS_ENTROPY_LOSSES and activation in ("softmax", "sigmoid"):
        return Head(output, logits, True, activation)
    if loss in CROSS_ENTROPY_LOSSES and activation == "log_softmax":
        # torch's log_softmax + nll_loss: the same cross-entropy, from the same logits.
        return Head(output, logits, True, "softmax")
    if loss in CROSS_ENTROPY_LOSSES and activation == "linear":
        probabilities = "sigmoid" if loss == "binary_crossentropy" else "softmax"
        return Head(output, output, True, probabilities)
    return Head(output, output, False, activation)


def layer_types() -> list[str]:
    """Every layer type of the catalogue, in catalogue order."""
    return [layer_type_name(cls) for cls in LAYER_TYPES]


def total_size(shape: Shape) -> int:
    return math.prod(shape)
