"""One builder per layer type: a spec node -> the Keras layer that computes it.

Keras' own layers are used wherever their meaning equals the spec's (checked in
tests/backends/test_layers.py); dropout is archspec's own, because its mask
comes from the neutral random stream. Every layer is named after its node id, so its
weights are found by name, and built channels-last whatever Keras' global config says.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from archspec.graph import Node
from archspec.spec import layers as spec
from archspec.spec.common import as_pair

from .activations import Activation
from .context import BuildContext
from .random import fused_dropout_keep_mask
from .recurrent import bidirectional_layer, recurrent_layer

CHANNELS_LAST = "channels_last"

Builder = Callable[[Node, BuildContext], keras.layers.Layer]


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


def _dense(node: Node, context: BuildContext):
    layer = node.layer_as(spec.Dense)
    return keras.layers.Dense(layer.units, use_bias=layer.use_bias, name=node.id, dtype=context.dtype)


def _activation(node: Node, context: BuildContext):
    return Activation(node.layer_as(spec.Activation).activation, name=node.id, dtype=context.dtype)


def _dropout(node: Node, context: BuildContext):
    return Dropout(
        node.layer_as(spec.Dropout).rate,
        context.seed,
        node.index,
        context.step,
        context.offset,
        name=node.id,
        dtype=context.dtype,
    )


def _flatten(node, context):
    return keras.layers.Flatten(data_format=CHANNELS_LAST, name=node.id, dtype=context.dtype)


def _reshape(node: Node, context: BuildContext):
    return keras.layers.Reshape(tuple(node.layer_as(spec.Reshape).target_shape), name=node.id, dtype=context.dtype)


def _conv2d(node: Node, context: BuildContext):
    layer = node.layer_as(spec.Conv2D)
    return keras.layers.Conv2D(
        layer.filters,
        as_pair(layer.kernel_size),
        strides=as_pair(layer.strides),
        padding=layer.padding,
        dilation_rate=as_pair(layer.dilation_rate),
        use_bias=layer.use_bias,
        data_format=CHANNELS_LAST,
        name=node.id,
        dtype=context.dtype,
    )


def _pool(keras_class, layer_class: type[spec.MaxPool2D] | type[spec.AvgPool2D]) -> Builder:
    def build(node: Node, context: BuildContext):
        layer = node.layer_as(layer_class)
        return keras_class(
            as_pair(layer.pool_size),
            strides=layer.stride_pair,
            padding=layer.padding,
            data_format=CHANNELS_LAST,
            name=node.id,
            dtype=context.dtype,
        )

    return build


def _global_avgpool2d(node, context):
    return keras.layers.GlobalAveragePooling2D(data_format=CHANNELS_LAST, name=node.id, dtype=context.dtype)


def _batch_norm(node: Node, context: BuildContext):
    layer = node.layer_as(spec.BatchNorm)
    return BatchNormalization(
        axis=-1,
        momentum=layer.momentum,
        epsilon=layer.epsilon,
        center=layer.center,
        scale=layer.scale,
        name=node.id,
        dtype=context.dtype,
    )


@keras.saving.register_keras_serializable(package="archspec")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' batch normalisation; under a distribution strategy with several replicas the
    training statistics are those of the global batch.

    Two passes, as on one replica (Keras' ``synchronized=True`` uses E[x^2] - E[x]^2, which
    rounds differently): the mean from all-reduced sums and counts, then the variance from
    all-reduced squared deviations. The all-reduce differentiates, so gradients flow across
    workers.
    """

    def _moments(self, inputs, mask):
        context = tf.distribute.get_replica_context()
        if mask is not None or context is None or context.num_replicas_in_sync == 1:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], inputs.dtype)[None]
        totals = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.concat([tf.reduce_sum(inputs, axes), count], 0))
        n = totals[-1]
        mean = totals[:-1] / n
        squares = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(tf.square(inputs - mean), axes))
        return mean, squares / n


def _layer_norm(node: Node, context: BuildContext):
    layer = node.layer_as(spec.LayerNorm)
    return keras.layers.LayerNormalization(
        axis=-1,
        epsilon=layer.epsilon,
        center=layer.center,
        scale=layer.scale,
        name=node.id,
        dtype=context.dtype,
    )


def _embedding(node: Node, context: BuildContext):
    layer = node.layer_as(spec.Embedding)
    return keras.layers.Embedding(layer.input_dim, layer.output_dim, name=node.id, dtype=context.dtype)


def _recurrent(layer_class: type[spec.SimpleRNN] | type[spec.LSTM] | type[spec.GRU]) -> Builder:
    def build(node: Node, context: BuildContext):
        return recurrent_layer(node.layer_as(layer_class), node.id, context.dtype)

    return build


def _bidirectional(node, context):
    return bidirectional_layer(node, context.dtype)


def _add(node, context):
    return keras.layers.Add(name=node.id, dtype=context.dtype)


def _multiply(node, context):
    return keras.layers.Multiply(name=node.id, dtype=context.dtype)


def _concatenate(node: Node, context: BuildContext):
    axis = node.layer_as(spec.Concatenate).axis
    # The spec counts axes per sample; Keras counts the batch axis too.
    return keras.layers.Concatenate(axis=axis + 1 if axis >= 0 else axis, name=node.id, dtype=context.dtype)


BUILDERS: dict[str, Builder] = {
    "dense": _dense,
    "activation": _activation,
    "dropout": _dropout,
    "flatten": _flatten,
    "reshape": _reshape,
    "conv2d": _conv2d,
    "maxpool2d": _pool(keras.layers.MaxPooling2D, spec.MaxPool2D),
    "avgpool2d": _pool(keras.layers.AveragePooling2D, spec.AvgPool2D),
    "global_avgpool2d": _global_avgpool2d,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "embedding": _embedding,
    "masking": lambda node, context: Masking(node.layer_as(spec.Masking).mask_value, name=node.id, dtype=context.dtype),
    "simple_rnn": _recurrent(spec.SimpleRNN),
    "lstm": _recurrent(spec.LSTM),
    "gru": _recurrent(spec.GRU),
    "bidirectional": _bidirectional,
    "add": _add,
    "concatenate": _concatenate,
    "multiply": _multiply,
}
