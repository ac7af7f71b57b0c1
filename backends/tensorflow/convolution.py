"""The convolution and pooling layers of the TensorFlow backend, 1-D and 2-D: Keras' own,
configured channels-last from the spec (``convolution``, ``pool``, ``global_pool`` make their
builders), and archspec's global pooling of masked sequences."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from archspec.graph import Node
from archspec.spec import layers as spec

from .context import CHANNELS_LAST, BuildContext, Builder


def convolution(keras_class, layer_class: type[spec.Conv1D] | type[spec.Conv2D]) -> Builder:
    # Keras' Conv1D 'causal' pads (kernel_size - 1) * dilation_rate steps before, as the spec says.
    def build(node: Node, context: BuildContext):
        layer = node.layer_as(layer_class)
        return keras_class(
            layer.filters,
            layer.kernel_sizes,
            strides=layer.stride_sizes,
            padding=layer.padding,
            dilation_rate=layer.dilation_sizes,
            use_bias=layer.use_bias,
            data_format=CHANNELS_LAST,
            name=node.id,
            dtype=context.dtype,
        )

    return build


_PoolClass = type[spec.MaxPool1D] | type[spec.AvgPool1D] | type[spec.MaxPool2D] | type[spec.AvgPool2D]


def pool(keras_class, layer_class: _PoolClass) -> Builder:
    # Keras' average pooling with 'same' divides by the real positions of each window, as the spec says.
    def build(node: Node, context: BuildContext):
        layer = node.layer_as(layer_class)
        return keras_class(
            layer.pool_sizes,
            strides=layer.stride_sizes,
            padding=layer.padding,
            data_format=CHANNELS_LAST,
            name=node.id,
            dtype=context.dtype,
        )

    return build


def global_pool(keras_class) -> Builder:
    def build(node: Node, context: BuildContext):
        if node.input_masked and node.input_masked[0]:
            mode = "max" if node.type.startswith("global_max") else "avg"
            return MaskedGlobalPool1D(mode, name=node.id, dtype=context.dtype)
        return keras_class(data_format=CHANNELS_LAST, name=node.id, dtype=context.dtype)

    return build


@keras.saving.register_keras_serializable(package="archspec")
class MaskedGlobalPool1D(keras.layers.Layer):
    """Mean or max over the valid steps of a masked sequence, 0 for a sequence without any
    (Keras' ``GlobalAveragePooling1D`` gives NaN there, and its max pooling ignores masks)."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.supports_masking = True  # it is given the mask explicitly (archspec's rule)

    def call(self, inputs, mask=None):
        valid = mask[:, :, None]
        any_valid = tf.reduce_any(valid, axis=1)
        if self.mode == "max":
            largest = tf.reduce_max(tf.where(valid, inputs, tf.constant(-math.inf, inputs.dtype)), axis=1)
            return tf.where(any_valid, largest, tf.zeros_like(largest))
        total = tf.reduce_sum(tf.where(valid, inputs, tf.zeros_like(inputs)), axis=1)
        count = tf.reduce_sum(tf.cast(valid, inputs.dtype), axis=1)
        return tf.where(any_valid, total / tf.maximum(count, 1.0), tf.zeros_like(total))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def zero_padding(keras_class, layer_class: type[spec.ZeroPadding1D] | type[spec.ZeroPadding2D]) -> Builder:
    def build(node: Node, context: BuildContext):
        amounts = node.layer_as(layer_class).amounts
        padding = amounts[0] if layer_class.rank == 1 else amounts
        options = {} if layer_class.rank == 1 else {"data_format": CHANNELS_LAST}
        return keras_class(padding, name=node.id, dtype=context.dtype, **options)

    return build
