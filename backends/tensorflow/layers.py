"""One builder per layer type: a spec node -> the Keras layer that computes it.

Keras' own layers are used wherever their meaning equals the spec's (checked in
tests/backends/test_layers.py); dropout is archspec's own, because its mask
comes from the neutral random stream. Every layer is named after its node id, so its
weights are found by name, and built channels-last whatever Keras' global config says.
archspec's own layers live by family: ``core.py``, ``convolution.py``, ``normalization.py``,
``recurrent.py`` and ``attention.py``.
"""

from __future__ import annotations

import keras

from archspec.graph import Node
from archspec.spec import layers as spec

from .activations import Activation
from .attention import MultiHeadAttention, multi_head_attention, position_embedding
from .context import CHANNELS_LAST, BuildContext, Builder
from .convolution import convolution, global_pool, pool, zero_padding
from .core import Dropout, Masking
from .normalization import batch_norm, layer_norm
from .recurrent import bidirectional_layer, recurrent_layer


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
    "conv1d": convolution(keras.layers.Conv1D, spec.Conv1D),
    "conv2d": convolution(keras.layers.Conv2D, spec.Conv2D),
    "maxpool1d": pool(keras.layers.MaxPooling1D, spec.MaxPool1D),
    "avgpool1d": pool(keras.layers.AveragePooling1D, spec.AvgPool1D),
    "maxpool2d": pool(keras.layers.MaxPooling2D, spec.MaxPool2D),
    "avgpool2d": pool(keras.layers.AveragePooling2D, spec.AvgPool2D),
    "global_avgpool1d": global_pool(keras.layers.GlobalAveragePooling1D),
    "global_maxpool1d": global_pool(keras.layers.GlobalMaxPooling1D),
    "global_avgpool2d": global_pool(keras.layers.GlobalAveragePooling2D),
    "global_maxpool2d": global_pool(keras.layers.GlobalMaxPooling2D),
    "zero_padding1d": zero_padding(keras.layers.ZeroPadding1D, spec.ZeroPadding1D),
    "zero_padding2d": zero_padding(keras.layers.ZeroPadding2D, spec.ZeroPadding2D),
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "embedding": _embedding,
    "masking": lambda node, context: Masking(node.layer_as(spec.Masking).mask_value, name=node.id, dtype=context.dtype),
    "simple_rnn": _recurrent(spec.SimpleRNN),
    "lstm": _recurrent(spec.LSTM),
    "gru": _recurrent(spec.GRU),
    "bidirectional": _bidirectional,
    "multi_head_attention": multi_head_attention,
    "position_embedding": position_embedding,
    "add": _add,
    "concatenate": _concatenate,
    "multiply": _multiply,
}
