"""Canonical layout <-> JAX variables (``docs/layout.md``): the only place that says where a parameter lives.

JAX keeps every parameter in the canonical layout, each in an ``nnx`` variable of its own
named like the parameter, so no slot needs a conversion or a row. Attention keeps its four
projections as ``Dense`` sub-modules (``query.kernel``); a bidirectional layer keeps its two
recurrent layers as ``forward`` and ``backward`` (``forward.kernel``).
"""

from __future__ import annotations

from archspec.graph import Node
from archspec.layout import Slot, table_entry
from archspec.spec.layers import Bidirectional

_DENSE = {"kernel": "kernel", "bias": "bias"}
_NORM = {"gamma": "gamma", "beta": "beta"}
_RECURRENT = {"kernel": "kernel", "recurrent_kernel": "recurrent_kernel", "bias": "bias"}
_BY_TYPE: dict[str, dict[str, str]] = {
    "dense": _DENSE,
    "conv1d": _DENSE,
    "conv2d": _DENSE,
    "batch_norm": {**_NORM, "moving_mean": "moving_mean", "moving_variance": "moving_variance"},
    "layer_norm": _NORM,
    "embedding": {"embeddings": "embeddings"},
    "simple_rnn": _RECURRENT,
    "lstm": _RECURRENT,
    "gru": {**_RECURRENT, "recurrent_bias": "recurrent_bias"},
    "multi_head_attention": {
        f"{projection}_{part}": f"{projection}.{part}"
        for projection in ("query", "key", "value", "output")
        for part in ("kernel", "bias")
    },
    "position_embedding": {"embeddings": "embeddings"},
}


def _path(layer_type: str, name: str) -> str:
    if "." in name:  # bidirectional: "backward.kernel" -> the backward layer's "kernel"
        direction, inner = name.split(".", 1)
        return f"{direction}.{_path(layer_type, inner)}"
    return table_entry(_BY_TYPE, layer_type, name, "jax")


def node_slots(node: Node) -> list[Slot]:
    """Every canonical parameter of ``node``, in canonical order: the variable holding it.

    Raises ``BackendUnavailableError`` naming the layer type and parameter if this table has no entry.
    """
    layer_type = node.layer.layer.type if isinstance(node.layer, Bidirectional) else node.type
    return [
        Slot(node.canonical_name(param), node.id, _path(layer_type, param.name), None, param.trainable)
        for param in node.params
    ]
