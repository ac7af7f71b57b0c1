"""The original of a Keras import, as the proof runs it (``archspec.porting.Original``): the
model as it is (float32), or rebuilt with every layer computing in float64 and its weights cast.

Keras' float64 is not quite float64 in two places, both constants cast through float32 (a
``tf.cast`` of a Python float): the attention score scale and the exact GELU's 1/sqrt(2). The
float64 twin keeps both exact, so the proof compares the model's own arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from archspec.errors import UsageError

from .porting_common import Unsupported, activation_name, is_stock


class _ExactGelu:
    """Keras' exact GELU for the float64 twin: tf.nn.gelu casts 1/sqrt(2) through a float32
    constant, which rounds it in a float64 model."""

    archspec_activation = "gelu"

    def __call__(self, x):
        return 0.5 * x * tf.math.erfc(-x * tf.constant(0.7071067811865476, x.dtype))


def activation_name_or_none(function) -> str | None:
    try:
        return activation_name(function)
    except Unsupported:
        return None


def _float64_clone(model):
    """``model`` rebuilt with every layer (and input) computing in float64, holding its weights."""

    def to_float64(config):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy":
                return {**config, "config": {**config["config"], "name": "float64"}}
            return {
                key: (
                    "float64"
                    if key == "dtype" and isinstance(value, str) and value.startswith(("float", "mixed"))
                    else to_float64(value)
                )
                for key, value in config.items()
            }
        if isinstance(config, list):
            return [to_float64(item) for item in config]
        return config

    def clone(layer):
        twin = type(layer).from_config(to_float64(layer.get_config()))
        if getattr(twin, "activation", None) is not None and activation_name_or_none(twin.activation) == "gelu":
            twin.activation = _ExactGelu()
        return twin

    inputs = [
        keras.Input(
            tuple(t.shape[1:]),
            dtype="float64" if str(t.dtype).startswith("float") else t.dtype,
            name=t._keras_history.operation.name,
        )
        for t in model.inputs
    ]
    twin = keras.models.clone_model(model, input_tensors=inputs if len(inputs) > 1 else inputs[0], clone_function=clone)
    twin.set_weights([np.asarray(w, dtype=np.float64) if w.dtype.kind == "f" else w for w in model.get_weights()])
    for layer in twin.layers:
        if type(layer).__name__ == "MultiHeadAttention" and is_stock(layer):
            # Keras casts its Python-float score scale through a float32 constant (tf.cast of a
            # float), which rounds it in a float64 model; a float64 scalar keeps it exact.
            layer._inverse_sqrt_key_dim = np.float64(1.0) / np.sqrt(np.float64(layer.key_dim))
    return twin


class KerasOriginal:
    """The imported Keras model, run as it is (float32) or rebuilt in float64."""

    framework = "keras"

    def __init__(self, model, reading: Any, read: Callable[[Any], Any]):
        self._readings = {"float32": reading}
        self._model = model
        self._read = read  # a Keras model -> its reading (porting._Reading), for the float64 twin

    def _reading(self, dtype: str) -> Any:
        if dtype not in ("float32", "float64"):
            raise UsageError(f"expected dtype float32 or float64, received {dtype!r}")
        if dtype not in self._readings:
            self._readings[dtype] = self._read(_float64_clone(self._model))
        return self._readings[dtype]

    def _run(self, reading: Any, names: list[str], inputs: Mapping[str, np.ndarray], dtype: str):
        tensors = [reading.tensors[name] for name in names]
        runner = keras.Model(reading.model.inputs, tensors)
        arrays = []
        for name in reading.input_order:
            value = np.asarray(inputs[name])
            arrays.append(value.astype(dtype) if value.dtype.kind == "f" else value)
        values = runner(arrays, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        return {name: np.asarray(keras.ops.convert_to_numpy(value)) for name, value in zip(names, values)}

    def outputs(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        reading = self._reading(dtype)
        return self._run(reading, reading.outputs, inputs, dtype)

    def intermediates(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        reading = self._reading(dtype)
        return self._run(reading, list(reading.tensors), inputs, dtype)
