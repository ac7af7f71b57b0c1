"""Canonical layout <-> Keras variables (``docs/layout.md``): the only place that says where a parameter lives.

Keras already stores every parameter in the canonical layout except one: GRU keeps
its input and recurrent biases as the two rows of one ``(2, 3u)`` variable. So a
canonical parameter is a variable of its node's layer, or a row of one, and no slot
needs a conversion (``archspec.layout`` applies them).
"""

from __future__ import annotations

from archspec.graph import Node
from archspec.layout import Slot, table_entry
from archspec.spec.layers import Bidirectional

_Entry = tuple[str, int | None]  # (attribute path inside the Keras layer, row or None)

_DENSE: dict[str, _Entry] = {"kernel": ("kernel", None), "bias": ("bias", None)}
_NORM: dict[str, _Entry] = {"gamma": ("gamma", None), "beta": ("beta", None)}
_RECURRENT: dict[str, _Entry] = {
    "kernel": ("cell.kernel", None),
    "recurrent_kernel": ("cell.recurrent_kernel", None),
    "bias": ("cell.bias", None),
}
_BY_TYPE: dict[str, dict[str, _Entry]] = {
    "dense": _DENSE,
    "conv1d": _DENSE,
    "conv2d": _DENSE,
    "batch_norm": {**_NORM, "moving_mean": ("moving_mean", None), "moving_variance": ("moving_variance", None)},
    "layer_norm": _NORM,
    "embedding": {"embeddings": ("embeddings", None)},
    "simple_rnn": _RECURRENT,
    "lstm": _RECURRENT,
    "gru": {**_RECURRENT, "bias": ("cell.bias", 0), "recurrent_bias": ("cell.bias", 1)},
    # archspec's own attention layer keeps its projections as Dense layers in the canonical layout.
    "multi_head_attention": {
        f"{projection}_{part}": (f"{projection}_dense.{part}", None)
        for projection in ("query", "key", "value", "output")
        for part in ("kernel", "bias")
    },
    "position_embedding": {"embeddings": ("embeddings", None)},
}


def _entry(layer_type: str, name: str) -> _Entry:
    if "." in name:  # bidirectional: "backward.kernel" -> "backward_layer.cell.kernel"
        direction, inner = name.split(".", 1)
        path, row = _entry(layer_type, inner)
        return f"{direction}_layer.{path}", row
    return table_entry(_BY_TYPE, layer_type, name, "tensorflow")


def node_slots(node: Node) -> list[Slot]:
    """Every canonical parameter of ``node``, in canonical order: the variable (or row) holding it.

    Raises ``BackendUnavailableError`` naming the layer type and parameter if this table has no entry.
    """
    layer_type = node.layer.layer.type if isinstance(node.layer, Bidirectional) else node.type
    slots = []
    for param in node.params:
        path, row = _entry(layer_type, param.name)
        slots.append(Slot(node.canonical_name(param), node.id, path, row, param.trainable))
    return slots
