"""Canonical layout <-> Keras variables: the one place that knows where each parameter lives.

Keras already stores every parameter in the canonical layout except one: GRU keeps
its input and recurrent biases as the two rows of one ``(2, 3u)`` variable. So a
canonical parameter is a :class:`NativeSlot`: a variable, and a row of it or all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from archspec.graph import ModelGraph

_GRU_BIAS_ROWS = {"bias": 0, "recurrent_bias": 1}


@dataclass(frozen=True)
class NativeSlot:
    """Where one canonical parameter lives: ``variable``, or its row ``row``."""

    variable: Any  # a keras.Variable
    row: int | None = None
    trainable: bool = True

    def view(self, value):
        """The canonical part of ``value`` (the variable's value, gradient or optimizer slot)."""
        return value if self.row is None else value[self.row]


def _slot(layer_type: str, keras_layer, local_name: str, trainable: bool) -> NativeSlot:
    if layer_type in ("simple_rnn", "lstm", "gru"):
        holder = keras_layer.cell
        if layer_type == "gru" and local_name in _GRU_BIAS_ROWS:
            return NativeSlot(holder.bias, _GRU_BIAS_ROWS[local_name], trainable)
        return NativeSlot(getattr(holder, local_name), None, trainable)
    return NativeSlot(getattr(keras_layer, local_name), None, trainable)


def native_slots(graph: ModelGraph, keras_layers: Mapping[str, Any]) -> dict[str, NativeSlot]:
    """Canonical name -> slot, for every parameter of ``graph`` (``keras_layers`` by node id)."""
    slots = {}
    for node in graph.nodes:
        keras_layer = keras_layers[node.id]
        for param in node.params:
            layer_type, holder, local_name = node.type, keras_layer, param.name
            if node.type == "bidirectional":
                direction, local_name = param.name.split(".", 1)
                layer_type = node.layer.layer.type
                holder = keras_layer.forward_layer if direction == "forward" else keras_layer.backward_layer
            slots[node.canonical_name(param)] = _slot(layer_type, holder, local_name, param.trainable)
    return slots


def read(slots: Mapping[str, NativeSlot]) -> dict[str, np.ndarray]:
    """Every parameter's current value, canonical layout (copies)."""
    values = {}
    for variable, parts in group_by_variable(slots):
        values.update(to_canonical(parts, variable.numpy()))
    return {name: values[name] for name in slots}


def write(slots: Mapping[str, NativeSlot], weights: Mapping[str, np.ndarray]) -> None:
    """Assign canonical ``weights`` (all parameters) to their variables, one assignment per variable."""
    for variable, parts in group_by_variable(slots):
        variable.assign(to_native(parts, weights))


def group_by_variable(slots: Mapping[str, NativeSlot]) -> list[tuple[Any, list[tuple[str, NativeSlot]]]]:
    """(variable, the (canonical name, slot) pairs stored in it), each variable once, in canonical order."""
    groups: dict[int, tuple[Any, list]] = {}  # by id(): variables are not hashable
    for name, slot in slots.items():
        groups.setdefault(id(slot.variable), (slot.variable, []))[1].append((name, slot))
    return list(groups.values())


def to_canonical(parts: list[tuple[str, NativeSlot]], native: np.ndarray) -> dict[str, np.ndarray]:
    """The canonical arrays stored in one variable's native array (values, gradients or state)."""
    return {name: np.array(slot.view(native)) for name, slot in parts}


def to_native(parts: list[tuple[str, NativeSlot]], canonical: Mapping[str, np.ndarray]) -> np.ndarray:
    """A variable's native array assembled from canonical arrays (values, gradients or state)."""
    if len(parts) == 1 and parts[0][1].row is None:
        return np.asarray(canonical[parts[0][0]])
    rows = sorted((slot.row, name) for name, slot in parts)
    return np.stack([np.asarray(canonical[name]) for _, name in rows])
