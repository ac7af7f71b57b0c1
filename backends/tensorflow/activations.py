"""Activation functions with TensorFlow ops, and the Keras layer that applies one.

Each function is written to the definition in ``archspec/reference/activations.py``
(exact erf GELU, leaky ReLU slope 0.2, ELU alpha 1, softmax on the last axis).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from archspec.definitions.constants import ELU_ALPHA, LEAKY_RELU_SLOPE
from archspec.errors import lookup


def _gelu(x: tf.Tensor) -> tf.Tensor:
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def _elu(x: tf.Tensor) -> tf.Tensor:
    # The minimum keeps expm1 finite in the branch the where discards (its gradient too).
    return tf.where(x > 0.0, x, ELU_ALPHA * tf.math.expm1(tf.minimum(x, 0.0)))


ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": tf.identity,
    "relu": tf.nn.relu,
    # "> 0" (not ">= 0") gives the gradient at 0 that torch and tf.nn.leaky_relu give: the slope.
    "leaky_relu": lambda x: tf.where(x > 0.0, x, LEAKY_RELU_SLOPE * x),
    "elu": _elu,
    "gelu": _gelu,
    "silu": lambda x: x * tf.math.sigmoid(x),
    "sigmoid": tf.math.sigmoid,
    "tanh": tf.math.tanh,
    "softmax": lambda x: tf.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: tf.nn.log_softmax(x, axis=-1),
}


@keras.saving.register_keras_serializable(package="archspec")
class Activation(keras.layers.Layer):
    """Applies the activation called ``function`` (a name of ``ACTIVATIONS``)."""

    def __init__(self, function: str, **kwargs):
        super().__init__(**kwargs)
        lookup(ACTIVATIONS, function, "activation")  # refused here, at construction, not when called
        self.function = function

    def call(self, inputs):
        return ACTIVATIONS[self.function](inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "function": self.function}
