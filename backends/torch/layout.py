"""Canonical <-> torch weight layout (``docs/layout.md``): the only place that converts.

Each canonical parameter maps to one tensor of its node's module, named by its
path inside that module (``weight``, ``forward_layer.weight_ih``), with a pair
of numpy conversions. The conversions are linear (transposes, block swaps), so
they also convert gradients and optimizer slots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from archspec.graph import Node

Convert = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Slot:
    """One canonical parameter and the torch tensor holding it."""

    canonical: str  # "dense_1.kernel"
    native: str  # path inside the node's module: "weight", "backward_layer.bias_ih"
    to_native: Convert
    to_canonical: Convert


def _same(array: np.ndarray) -> np.ndarray:
    return array


def _transpose(array: np.ndarray) -> np.ndarray:
    return array.T


def _hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)


def _oihw_to_hwio(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)


def _swap_first_blocks(array: np.ndarray) -> np.ndarray:
    """Swap the first two of three gate blocks on the last axis: GRU's z, r, h <-> torch's r, z, n."""
    z, r, h = np.split(array, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _gru_to_native(kernel: np.ndarray) -> np.ndarray:
    return _swap_first_blocks(kernel).T


def _gru_to_canonical(weight: np.ndarray) -> np.ndarray:
    return _swap_first_blocks(weight.T)


_DENSE = {"kernel": ("weight", _transpose, _transpose), "bias": ("bias", _same, _same)}
_CONV = {"kernel": ("weight", _hwio_to_oihw, _oihw_to_hwio), "bias": ("bias", _same, _same)}
_NORM = {
    "gamma": ("weight", _same, _same),
    "beta": ("bias", _same, _same),
    "moving_mean": ("running_mean", _same, _same),
    "moving_variance": ("running_var", _same, _same),
}
_RECURRENT = {
    "kernel": ("weight_ih", _transpose, _transpose),
    "recurrent_kernel": ("weight_hh", _transpose, _transpose),
    "bias": ("bias_ih", _same, _same),
}
_GRU = {
    "kernel": ("weight_ih", _gru_to_native, _gru_to_canonical),
    "recurrent_kernel": ("weight_hh", _gru_to_native, _gru_to_canonical),
    "bias": ("bias_ih", _swap_first_blocks, _swap_first_blocks),
    "recurrent_bias": ("bias_hh", _swap_first_blocks, _swap_first_blocks),
}
_BY_TYPE = {
    "dense": _DENSE,
    "conv2d": _CONV,
    "batch_norm": _NORM,
    "layer_norm": _NORM,
    "embedding": {"embeddings": ("weight", _same, _same)},
    "simple_rnn": _RECURRENT,
    "lstm": _RECURRENT,
    "gru": _GRU,
}


def _local(layer_type: str, name: str) -> tuple[str, Convert, Convert]:
    if "." in name:  # bidirectional: "forward.kernel" -> "forward_layer.weight_ih"
        direction, inner = name.split(".", 1)
        native, to_native, to_canonical = _local(layer_type, inner)
        return f"{direction}_layer.{native}", to_native, to_canonical
    return _BY_TYPE[layer_type][name]


def node_slots(node: Node) -> list[Slot]:
    """Every canonical parameter of ``node`` with its tensor path and conversions."""
    layer_type = node.layer.layer.type if node.type == "bidirectional" else node.type
    return [Slot(node.canonical_name(param), *_local(layer_type, param.name)) for param in node.params]


def to_native(slot: Slot, array: np.ndarray) -> np.ndarray:
    """A canonical array in the torch layout (a contiguous copy, ready for ``torch.from_numpy``)."""
    return np.array(slot.to_native(np.asarray(array)), order="C")


def to_canonical(slot: Slot, array: np.ndarray) -> np.ndarray:
    """A torch-layout array in the canonical layout (a contiguous copy: never shares the tensor's memory)."""
    return np.array(slot.to_canonical(np.asarray(array)), order="C")
