"""archspec's own core Keras layers: dropout whose mask comes from the neutral random stream,
and masking that leaves the masks to archspec (which passes them by its written rules)."""

from __future__ import annotations

import keras
import tensorflow as tf

from archspec.graph import Node
from archspec.spec import layers as spec

from .random import fused_dropout_keep_mask


@keras.saving.register_keras_serializable(package="archspec")
class Dropout(keras.layers.Layer):
    """Dropout whose keep mask is ``archspec.random``'s (seed, layer, step, position, element)."""

    def __init__(
        self,
        rate: float,
        seed: int,
        layer_index: int,
        step: tf.Variable | None = None,
        offset: tf.Variable | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.layer_index = layer_index
        # A plain tf.Variable, not a Keras weight: it is no parameter (count_params
        # ignores it) and the engine assigns it inside its compiled step.
        self.step = step if step is not None else tf.Variable(0, dtype=tf.int64, trainable=False)
        self.offset = offset if offset is not None else tf.Variable(0, dtype=tf.int64, trainable=False)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = fused_dropout_keep_mask(self.seed, self.layer_index, self.step, tf.shape(inputs), self.rate, self.offset)
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "layer_index": self.layer_index}


@keras.saving.register_keras_serializable(package="archspec")
class Masking(keras.layers.Layer):
    """Zeroes the steps whose features all equal ``mask_value`` (Keras' ``Masking`` computes the
    same, but attaches its mask to the tensor for Keras to propagate by its own rules; archspec
    passes masks itself, by its written rules, so this layer attaches none)."""

    def __init__(self, mask_value: float, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def call(self, inputs):
        return keras.ops.where(step_mask(inputs, self.mask_value)[..., None], inputs, keras.ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


def step_mask(x, mask_value: float):
    """True at the steps of ``x`` (batch, steps, features) where some feature differs from ``mask_value``."""
    return keras.ops.any(keras.ops.not_equal(x, mask_value), axis=-1)


def created_mask(node: Node, x):
    """The mask a ``create`` layer makes from its input: ids != 0 (embedding with ``mask_zero``),
    or the steps not all equal to ``mask_value`` (masking)."""
    if node.type == "embedding":
        return keras.ops.not_equal(x, 0)
    return step_mask(x, node.layer_as(spec.Masking).mask_value)
