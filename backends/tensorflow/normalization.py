"""The normalisation layers of the TensorFlow backend: Keras' batch normalisation (global-batch
statistics under a distribution strategy) and layer normalisation, both over the last axis."""

from __future__ import annotations

import keras
import tensorflow as tf

from archspec.graph import Node
from archspec.spec import layers as spec

from .context import BuildContext


def batch_norm(node: Node, context: BuildContext):
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


def layer_norm(node: Node, context: BuildContext):
    layer = node.layer_as(spec.LayerNorm)
    return keras.layers.LayerNormalization(
        axis=-1,
        epsilon=layer.epsilon,
        center=layer.center,
        scale=layer.scale,
        name=node.id,
        dtype=context.dtype,
    )
