"""The attention and position layers of the TensorFlow backend: multi-head attention with
Keras' meaning (its dropout archspec's own) and the learned or sinusoidal position embedding,
with the builders that configure them from a node."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from archspec.definitions.positions import sinusoidal_table
from archspec.graph import Node
from archspec.spec import layers as spec

from .context import BuildContext
from .core import Dropout


@keras.saving.register_keras_serializable(package="archspec")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention as ``archspec.spec.layers.MultiHeadAttention`` defines it (Keras'
    meaning), archspec's own because the dropout on the attention weights takes its mask from
    the neutral stream (``core.Dropout``, on each sample's (heads, query steps, key steps)).

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


def multi_head_attention(node: Node, context: BuildContext):
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


def position_embedding(node: Node, context: BuildContext):
    layer = node.layer_as(spec.PositionEmbedding)
    return PositionEmbedding(layer.kind, layer.max_length, name=node.id, dtype=context.dtype)
