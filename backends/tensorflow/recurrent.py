"""The recurrent layers of the TensorFlow backend: simple_rnn, lstm and gru, and bidirectional wrappers.

Keras' own recurrent layers, configured to the spec's gate formulas (GRU with
``reset_after=True``, sigmoid recurrent activations); inputs are (batch, steps, features).
"""

from __future__ import annotations

import keras

from archspec.graph import Node
from archspec.spec import layers as spec


def recurrent_layer(layer: spec.SimpleRNN | spec.LSTM | spec.GRU, name: str, dtype: str):
    """The Keras layer for a simple_rnn, lstm or gru spec (also the layer a bidirectional wraps)."""
    options = dict(return_sequences=layer.return_sequences, use_bias=layer.use_bias, name=name, dtype=dtype)
    if layer.type == "simple_rnn":
        return keras.layers.SimpleRNN(layer.units, activation=layer.activation, **options)
    if layer.type == "lstm":
        return keras.layers.LSTM(layer.units, activation="tanh", recurrent_activation="sigmoid", **options)
    return keras.layers.GRU(layer.units, activation="tanh", recurrent_activation="sigmoid", reset_after=True, **options)


def bidirectional_layer(node: Node, dtype: str):
    """The Keras ``Bidirectional`` for a bidirectional node; Keras names the copies "forward_{id}" and "backward_{id}"."""
    layer = node.layer_as(spec.Bidirectional)
    inner = recurrent_layer(layer.layer, node.id, dtype)
    return keras.layers.Bidirectional(inner, merge_mode=layer.merge_mode, name=node.id, dtype=dtype)
