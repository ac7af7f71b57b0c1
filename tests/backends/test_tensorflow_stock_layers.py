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
        ("log_softmax", keras.activations.log_softmax, 1e-15),
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


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_keras_multi_head_attention(causal):
    source = """
name: cross
inputs: {q: {shape: [4, 6]}, v: {shape: [5, 3]}, k: {shape: [5, 2]}}
layers:
  - {id: a, type: multi_head_attention, num_heads: 3, key_dim: 2, value_dim: 4, output_dim: 5, causal: CAUSAL, inputs: [q, v, k]}
"""
    model = archspec.compile(source.replace("CAUSAL", str(causal).lower()), backend="tensorflow", dtype="float64")
    rng = np.random.default_rng(3)
    weights = {name: rng.normal(scale=0.5, size=value.shape) for name, value in model.get_weights().items()}
    model.set_weights(weights)
    inputs = {"q": rng.normal(size=(2, 4, 6)), "v": rng.normal(size=(2, 5, 3)), "k": rng.normal(size=(2, 5, 2))}

    stock = keras.layers.MultiHeadAttention(3, 2, value_dim=4, output_shape=5, dtype="float64")
    stock(inputs["q"], inputs["v"], inputs["k"])  # builds its variables
    native = {
        "query": (6, 3, 2),
        "key": (2, 3, 2),
        "value": (3, 3, 4),
        "output": (3, 4, 5),
    }
    for projection, kernel_shape in native.items():
        dense = getattr(stock, f"_{projection}_dense")
        assert tuple(dense.kernel.shape) == kernel_shape
        dense.kernel.assign(weights[f"a.{projection}_kernel"].reshape(kernel_shape))
        dense.bias.assign(weights[f"a.{projection}_bias"].reshape(dense.bias.shape))
    ours = model.predict(inputs)
    # Keras casts its Python-float 1 / sqrt(key_dim) to the query's dtype through a float32
    # tensor, so in float64 its scores carry float32 round-off (~1e-8): equal up to that ...
    expected = stock(inputs["q"], inputs["v"], inputs["k"], use_causal_mask=causal)
    np.testing.assert_allclose(ours, np.asarray(expected), rtol=1e-6, atol=1e-7)
    # ... and to float64 round-off once the scale is a float64 number.
    stock._inverse_sqrt_key_dim = np.float64(1.0) / np.sqrt(np.float64(2.0))
    expected = stock(inputs["q"], inputs["v"], inputs["k"], use_causal_mask=causal)
    np.testing.assert_allclose(ours, np.asarray(expected), rtol=1e-12, atol=1e-13)
