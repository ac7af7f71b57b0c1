"""TensorFlow layers against Keras' own functions and variables: why some activations are
archspec's own, and where Keras keeps the GRU's two biases."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import archspec
from archspec.backends.tensorflow.activations import ACTIVATIONS

POINTS = np.array([[-30.0, -2.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 30.0]])


def one_layer(layer_yaml, shape, dtype="float64", extra=""):
    """A compiled model of one layer on an input of per-sample ``shape``."""
    source = f"""
name: one
inputs:
  x: {{shape: {list(shape)}}}
layers:
  - {layer_yaml}
{extra}"""
    return archspec.compile(source, backend="tensorflow", dtype=dtype)


@pytest.mark.parametrize(
    "name, keras_function, rtol",
    [
        ("relu", keras.activations.relu, 1e-15),
        ("silu", keras.activations.silu, 1e-15),
        ("sigmoid", keras.activations.sigmoid, 1e-15),
        ("tanh", keras.activations.tanh, 1e-15),
        ("softmax", keras.activations.softmax, 1e-15),
        # Why these three are archspec's own: in float64 Keras' versions are off by float32
        # round-off (gelu's constants, leaky_relu's slope) or use exp(x) - 1 instead of expm1.
        ("leaky_relu", lambda x: keras.activations.leaky_relu(x, negative_slope=0.2), 1e-7),
        ("elu", keras.activations.elu, 1e-12),
        ("gelu", lambda x: keras.activations.gelu(x, approximate=False), 1e-6),
    ],
)
def test_activation_equals_keras_up_to_keras_round_off(name, keras_function, rtol):
    x = tf.constant(POINTS[:, 1:])  # from -2.5: Keras' float32 gelu underflows differently at -30
    np.testing.assert_allclose(ACTIVATIONS[name](x).numpy(), keras_function(x).numpy(), rtol=rtol, atol=1e-300)


def test_gru_biases_are_the_two_rows_of_keras_bias():
    model = one_layer("{id: g, type: gru, units: 2}", (3, 4))
    bias, recurrent_bias = np.arange(6.0), 10 + np.arange(6.0)
    model.set_weights({**model.get_weights(), "g.bias": bias, "g.recurrent_bias": recurrent_bias})
    np.testing.assert_array_equal(model.native.get_layer("g").cell.bias.numpy(), [bias, recurrent_bias])
    slots = model.slots
    assert slots["g.bias"].row == 0 and slots["g.recurrent_bias"].row == 1
    assert len(model.arrays) == 3
