"""One builder per layer type: a spec node -> the Keras layer that computes it.

Keras' own layers are used wherever their meaning equals the spec's (checked in
tests/backends/test_layers.py); dropout is archspec's own, because its mask
comes from the neutral random stream. Every layer is named after its node id, so its
weights are found by name, and built channels-last whatever Keras' global config says.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from archspec.definitions.positions import sinusoidal_table
from archspec.graph import Node
from archspec.spec import layers as spec

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


def _convolution(keras_class, layer_class: type[spec.Conv1D] | type[spec.Conv2D]) -> Builder:
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


def _pool(keras_class, layer_class: _PoolClass) -> Builder:
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


def _global_pool(keras_class) -> Builder:
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


@keras.saving.register_keras_serializable(package="archspec")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention as ``archspec.spec.layers.MultiHeadAttention`` defines it (Keras'
    meaning), archspec's own because the dropout on the attention weights takes its mask from
    the neutral stream (``Dropout`` above, on each sample's (heads, query steps, key steps)).

    Takes ``query`` or a list ``[query, value]`` / ``[query, value, key]``. The projections are
    Dense layers ``query_dense``, ``key_dense``, ``value_dense``, ``output_dense`` whose kernels
    are the canonical ``(features, heads * dim)`` ones. ``allowed`` (causal) is the constant
    (query steps, key steps) boolean of the keys each query may attend to; a key mask
    combines with it by "and".
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int,
        output_dim: int,
        use_bias: bool,
        causal: bool,
        dropout: float,
        seed: int,
        layer_index: int,
        step: tf.Variable | None = None,
        offset: tf.Variable | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.value_dim, self.output_dim = num_heads, key_dim, value_dim, output_dim
        self.use_bias, self.causal, self.dropout = use_bias, causal, dropout
        self.seed, self.layer_index = seed, layer_index
        dtype = self.dtype_policy
        self.query_dense = keras.layers.Dense(num_heads * key_dim, use_bias=use_bias, name="query", dtype=dtype)
        self.key_dense = keras.layers.Dense(num_heads * key_dim, use_bias=use_bias, name="key", dtype=dtype)
        self.value_dense = keras.layers.Dense(num_heads * value_dim, use_bias=use_bias, name="value", dtype=dtype)
        self.output_dense = keras.layers.Dense(output_dim, use_bias=use_bias, name="output", dtype=dtype)
        self.attention_dropout = Dropout(
            dropout, seed, layer_index, step, offset, name="attention_dropout", dtype=dtype
        )
        self.step = self.attention_dropout.step
        self.supports_masking = True  # archspec passes the key's mask explicitly (its rule)

    def compute_mask(self, inputs, mask=None):
        return None  # archspec decides where masks go (the query's, by its graph)

    @staticmethod
    def _query_value_key(items):
        items = list(items) if isinstance(items, (list, tuple)) else [items]
        query = items[0]
        value = items[1] if len(items) > 1 else query
        key = items[2] if len(items) > 2 else value
        return query, value, key

    def build(self, input_shape):
        is_list = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        query, value, key = self._query_value_key(input_shape if is_list else [input_shape])
        self.query_dense.build(tuple(query))
        self.key_dense.build(tuple(key))
        self.value_dense.build(tuple(value))
        self.output_dense.build((*tuple(query)[:-1], self.num_heads * self.value_dim))
        self.built = True

    def _heads(self, x: tf.Tensor, size: int) -> tf.Tensor:
        """(N, T, heads * size) -> (N, heads, T, size)."""
        shape = tf.shape(x)
        return tf.transpose(tf.reshape(x, [shape[0], shape[1], self.num_heads, size]), [0, 2, 1, 3])

    def call(self, inputs, training=None, mask=None):
        query, value, key = self._query_value_key(inputs)
        q = self._heads(self.query_dense(query), self.key_dim)
        k = self._heads(self.key_dense(key), self.key_dim)
        v = self._heads(self.value_dense(value), self.value_dim)
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.key_dim)
        allowed = None
        if self.causal:
            ones = tf.ones(tf.shape(scores)[-2:], dtype=tf.bool)
            allowed = tf.linalg.band_part(ones, -1, 0)  # key j <= query i
        # archspec passes the key's mask (batch, key steps) itself; a list is Keras filling in
        # the masks of its own propagation, which archspec never attaches to a tensor.
        if mask is None or isinstance(mask, (list, tuple)):
            if allowed is not None:
                scores = tf.where(allowed, scores, tf.constant(-math.inf, scores.dtype))
            weights = tf.nn.softmax(scores, axis=-1)
        else:
            # Masked keys are never attended to, and a query allowed no key gets zero weights
            # (its row is made finite first, so no NaN flows back).
            keys = mask[:, None, None, :]
            allowed = keys if allowed is None else tf.logical_and(keys, allowed)
            sees = tf.reduce_any(allowed, axis=-1, keepdims=True)
            scores = tf.where(allowed, scores, tf.constant(-math.inf, scores.dtype))
            scores = tf.where(sees, scores, tf.zeros_like(scores))
            weights = tf.where(sees, tf.nn.softmax(scores, axis=-1), tf.zeros_like(scores))
        weights = self.attention_dropout(weights, training=training)
        attended = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
        shape = tf.shape(attended)
        return self.output_dense(tf.reshape(attended, [shape[0], shape[1], self.num_heads * self.value_dim]))

    def compute_output_shape(self, input_shape):
        is_list = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        query = tuple(input_shape[0]) if is_list else tuple(input_shape)
        return (*query[:-1], self.output_dim)

    def get_config(self):
        options = ("num_heads", "key_dim", "value_dim", "output_dim", "use_bias", "causal", "dropout")
        return {
            **super().get_config(),
            **{name: getattr(self, name) for name in options},
            "seed": self.seed,
            "layer_index": self.layer_index,
        }


@keras.saving.register_keras_serializable(package="archspec")
class PositionEmbedding(keras.layers.Layer):
    """``x + table[:steps]``: a learned ``embeddings`` weight (max_length, features) or the
    fixed sinusoidal table of ``archspec.definitions.positions``."""

    def __init__(self, kind: str, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.max_length = kind, max_length

    def build(self, input_shape):
        steps, features = input_shape[-2], input_shape[-1]
        if self.kind == "learned":
            # Its value always comes from the canonical weights; "zeros" only creates it.
            self.embeddings = self.add_weight(shape=(self.max_length, features), initializer="zeros", name="embeddings")
        else:
            self.table = tf.constant(sinusoidal_table(steps, features), dtype=self.compute_dtype)
        self.steps = steps
        self.built = True

    def call(self, inputs):
        if self.kind == "learned":
            return inputs + self.embeddings[: self.steps]
        return inputs + self.table

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "max_length": self.max_length}


def _multi_head_attention(node: Node, context: BuildContext):
    layer = node.layer_as(spec.MultiHeadAttention)
    return MultiHeadAttention(
        layer.num_heads,
        layer.key_dim,
        layer.value_size,
        node.output_shape[-1],
        layer.use_bias,
        layer.causal,
        layer.dropout,
        context.seed,
        node.index,
        context.step,
        context.offset,
        name=node.id,
        dtype=context.dtype,
    )


def _position_embedding(node: Node, context: BuildContext):
    layer = node.layer_as(spec.PositionEmbedding)
    return PositionEmbedding(layer.kind, layer.max_length, name=node.id, dtype=context.dtype)


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


STEP_READERS = (Dropout, MultiHeadAttention)
"""Layers that read the model's dropout ``step`` variable (a training call of the model advances it)."""

BUILDERS: dict[str, Builder] = {
    "dense": _dense,
    "activation": _activation,
    "dropout": _dropout,
    "flatten": _flatten,
    "reshape": _reshape,
    "conv1d": _convolution(keras.layers.Conv1D, spec.Conv1D),
    "conv2d": _convolution(keras.layers.Conv2D, spec.Conv2D),
    "maxpool1d": _pool(keras.layers.MaxPooling1D, spec.MaxPool1D),
    "avgpool1d": _pool(keras.layers.AveragePooling1D, spec.AvgPool1D),
    "maxpool2d": _pool(keras.layers.MaxPooling2D, spec.MaxPool2D),
    "avgpool2d": _pool(keras.layers.AveragePooling2D, spec.AvgPool2D),
    "global_avgpool1d": _global_pool(keras.layers.GlobalAveragePooling1D),
    "global_maxpool1d": _global_pool(keras.layers.GlobalMaxPooling1D),
    "global_avgpool2d": _global_pool(keras.layers.GlobalAveragePooling2D),
    "global_maxpool2d": _global_pool(keras.layers.GlobalMaxPooling2D),
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "embedding": _embedding,
    "masking": lambda node, context: Masking(node.layer_as(spec.Masking).mask_value, name=node.id, dtype=context.dtype),
    "simple_rnn": _recurrent(spec.SimpleRNN),
    "lstm": _recurrent(spec.LSTM),
    "gru": _recurrent(spec.GRU),
    "bidirectional": _bidirectional,
    "multi_head_attention": _multi_head_attention,
    "position_embedding": _position_embedding,
    "add": _add,
    "concatenate": _concatenate,
    "multiply": _multiply,
}
