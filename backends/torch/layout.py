"""Canonical <-> torch weight layout (``docs/layout.md``): the only place that says where a parameter lives.

Each canonical parameter maps to one tensor of its node's module, named by its
path inside that module (``weight``, ``forward_layer.weight_ih``), with a pair
of numpy conversions (``archspec.layout`` applies them). torch never keeps two
canonical parameters in one tensor, so no slot has a ``row``.
"""

from __future__ import annotations

import numpy as np

from archspec.graph import Node
from archspec.layout import Convert, Slot, same, table_entry
from archspec.spec.layers import Bidirectional


def _transpose(array: np.ndarray) -> np.ndarray:
    return array.T


def _spatial_first_to_out_in(kernel: np.ndarray) -> np.ndarray:
    """A convolution kernel (*spatial, in, out) (HWIO; 1-D: WIO) -> torch's (out, in, *spatial)."""
    return kernel.transpose(kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2))


def _out_in_to_spatial_first(weight: np.ndarray) -> np.ndarray:
    """torch's (out, in, *spatial) -> the canonical (*spatial, in, out)."""
    return weight.transpose(*range(2, weight.ndim), 1, 0)


def _swap_first_blocks(array: np.ndarray) -> np.ndarray:
    """Swap the first two of three gate blocks on the last axis: GRU's z, r, h <-> torch's r, z, n."""
    z, r, h = np.split(array, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _gru_to_native(kernel: np.ndarray) -> np.ndarray:
    return _swap_first_blocks(kernel).T


def _gru_to_canonical(weight: np.ndarray) -> np.ndarray:
    return _swap_first_blocks(weight.T)


_Entry = tuple[str, Convert, Convert]  # (tensor path inside the module, to native, to canonical)

_DENSE: dict[str, _Entry] = {"kernel": ("weight", _transpose, _transpose), "bias": ("bias", same, same)}
_CONV: dict[str, _Entry] = {
    "kernel": ("weight", _spatial_first_to_out_in, _out_in_to_spatial_first),
    "bias": ("bias", same, same),
}
_ATTENTION: dict[str, _Entry] = {
    f"{projection}_{part}": (f"{projection}.{native}", convert, convert)
    for projection in ("query", "key", "value", "output")
    for part, native, convert in (("kernel", "weight", _transpose), ("bias", "bias", same))
}
_NORM: dict[str, _Entry] = {
    "gamma": ("weight", same, same),
    "beta": ("bias", same, same),
    "moving_mean": ("running_mean", same, same),
    "moving_variance": ("running_var", same, same),
}
_RECURRENT: dict[str, _Entry] = {
    "kernel": ("weight_ih", _transpose, _transpose),
    "recurrent_kernel": ("weight_hh", _transpose, _transpose),
    "bias": ("bias_ih", same, same),
}
_GRU: dict[str, _Entry] = {
    "kernel": ("weight_ih", _gru_to_native, _gru_to_canonical),
    "recurrent_kernel": ("weight_hh", _gru_to_native, _gru_to_canonical),
    "bias": ("bias_ih", _swap_first_blocks, _swap_first_blocks),
    "recurrent_bias": ("bias_hh", _swap_first_blocks, _swap_first_blocks),
}
_BY_TYPE: dict[str, dict[str, _Entry]] = {
    "dense": _DENSE,
    "conv1d": _CONV,
    "conv2d": _CONV,
    "batch_norm": _NORM,
    "layer_norm": _NORM,
    "embedding": {"embeddings": ("weight", same, same)},
    "simple_rnn": _RECURRENT,
    "lstm": _RECURRENT,
    "gru": _GRU,
    "multi_head_attention": _ATTENTION,
    "position_embedding": {"embeddings": ("weight", same, same)},
}


def _entry(layer_type: str, name: str) -> _Entry:
    if "." in name:  # bidirectional: "forward.kernel" -> "forward_layer.weight_ih"
        direction, inner = name.split(".", 1)
        native, to_native, to_canonical = _entry(layer_type, inner)
        return f"{direction}_layer.{native}", to_native, to_canonical
    return table_entry(_BY_TYPE, layer_type, name, "torch")


def node_slots(node: Node) -> list[Slot]:
    """Every canonical parameter of ``node``, in canonical order: the tensor holding it and its conversions.

    Raises ``BackendUnavailableError`` naming the layer type and parameter if this table has no entry.
    """
    layer_type = node.layer.layer.type if isinstance(node.layer, Bidirectional) else node.type
    slots = []
    for param in node.params:
        path, to_native, to_canonical = _entry(layer_type, param.name)
        slots.append(Slot(node.canonical_name(param), node.id, path, None, param.trainable, to_native, to_canonical))
    return slots
