"""What the Keras layer converters (``porting_layers.py``) share: the refusal they raise, the
activation, regulariser and initializer readers, and small checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from archspec.porting.initializers import initializer_fields
from archspec.porting.training import shortest
from archspec.spec import layers as spec

ARCHSPEC_ACTIVATION = "Activation"
KERNEL_INITIALIZERS = ("kernel_initializer", "bias_initializer")
NORM_INITIALIZERS = ("gamma_initializer", "beta_initializer")
RECURRENT_INITIALIZERS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")
INITIALIZERS: dict[str, tuple[tuple[str, ...], Any]] = {  # Keras class -> (its initializers, the spec class)
    "Dense": (KERNEL_INITIALIZERS, spec.Dense),
    "Conv1D": (KERNEL_INITIALIZERS, spec.Conv1D),
    "Conv2D": (KERNEL_INITIALIZERS, spec.Conv2D),
    "BatchNormalization": (NORM_INITIALIZERS, spec.BatchNorm),
    "LayerNormalization": (NORM_INITIALIZERS, spec.LayerNorm),
    "Embedding": (("embeddings_initializer",), spec.Embedding),
}
IDENTITY_OPERATIONS = ("Copy",)  # archspec's build copies a masked output so Keras' own mask is dropped
ACTIVATIONS = ("linear", "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softmax")
_ALIASES = {"swish": "silu"}


class Unsupported(Exception):
    """A layer setting archspec cannot express (the message says which)."""


Converter = Callable[[Any, Any, list[str]], tuple[dict[str, Any], list[str]]]


def activation_name(function) -> str:
    """The archspec name of a Keras activation function; ``Unsupported`` for others."""
    if hasattr(function, "archspec_activation"):  # the proof's float64 stand-in (porting.py)
        return function.archspec_activation
    try:
        name = keras.activations.serialize(function)
    except (ValueError, TypeError):
        name = getattr(function, "__name__", repr(function))
    name = _ALIASES.get(name, name) if isinstance(name, str) else str(name)
    if name not in ACTIVATIONS:
        raise Unsupported(f"expected an activation among {', '.join(ACTIVATIONS)}, received {name!r}")
    return name


def need(condition: bool, message: str) -> None:
    if not condition:
        raise Unsupported(message)


def channels_last(layer) -> None:
    data_format = getattr(layer, "data_format", "channels_last")
    need(data_format == "channels_last", f"expected data_format='channels_last', received {data_format!r}")


def compact(values) -> int | list[int]:
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def regularizers(layer, names: tuple[str, ...]) -> dict[str, Any]:
    fields = {}
    for name in names:
        regularizer = getattr(layer, name, None)
        if regularizer is None:
            continue
        config = regularizer.get_config()
        need(
            set(config) <= {"l1", "l2"},
            f"expected an L1 or L2 {name}, received {type(regularizer).__name__}",
        )
        fields[name] = {key: shortest(value) for key, value in config.items() if value}
    return fields


def initializers(layer, names: tuple[str, ...], spec_class: Any) -> tuple[dict[str, Any], list[str]]:
    """The initializer fields of ``layer`` that differ from ``spec_class``'s defaults, and those
    archspec has no counterpart for (left at the default)."""
    serialized = {name: keras.initializers.serialize(getattr(layer, name)) for name in names if hasattr(layer, name)}
    defaults = {name: spec_class.model_fields[name].default for name in serialized}
    return initializer_fields(serialized, defaults)


def unmapped_initializers(layer) -> list[str]:
    """The initializers of a stock Keras layer that archspec has no counterpart for."""
    kind = type(layer).__name__
    if kind in ("SimpleRNN", "LSTM", "GRU"):
        return initializers(layer.cell, RECURRENT_INITIALIZERS, spec.LSTM)[1]
    if kind in INITIALIZERS and is_stock(layer):
        return initializers(layer, INITIALIZERS[kind][0], INITIALIZERS[kind][1])[1]
    return []


def initialized(layer, names: tuple[str, ...], spec_class: Any) -> dict[str, Any]:
    return initializers(layer, names, spec_class)[0]


def is_stock(layer) -> bool:
    """A layer of Keras itself (not one of archspec's own, which a compiled spec holds)."""
    return type(layer).__module__.startswith("keras.")
