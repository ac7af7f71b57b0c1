"""Single layers of the TensorFlow backend against hand-computed facts, Keras' own
functions and archspec's numpy definitions."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import archspec
from archspec.backends.tensorflow.activations import ACTIVATIONS
from archspec.backends.tensorflow.layers import BUILDERS
from archspec.backends.tensorflow.model import resolve_device
from archspec.backends.tensorflow.random import dropout_keep_mask
from archspec.errors import BackendUnavailableError, UsageError
from archspec.graph import layer_types
from archspec.random import dropout_keep_mask as numpy_keep_mask
from archspec.reference.activations import activation as reference_activation


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


def test_every_layer_type_has_a_builder():
    assert set(BUILDERS) == set(layer_types())


# --- activations --------------------------------------------------------------------

POINTS = np.array([[-30.0, -2.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 30.0]])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_equals_the_reference(name):
    value = ACTIVATIONS[name](tf.constant(POINTS)).numpy()
    np.testing.assert_allclose(value, reference_activation(name, POINTS), rtol=1e-15, atol=1e-300)


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


def test_gelu_is_exact_not_tanh_approximation():
    x = tf.constant([1.0], tf.float64)
    assert ACTIVATIONS["gelu"](x).numpy()[0] == pytest.approx(0.8413447460685429, rel=1e-15)


@pytest.mark.parametrize("name, slope", [("relu", 0.0), ("leaky_relu", 0.2), ("elu", 1.0)])
def test_activation_gradient_at_zero_is_torch_s(name, slope):
    x = tf.constant([0.0], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ACTIVATIONS[name](x)
    assert tape.gradient(y, x).numpy()[0] == slope


# --- dropout ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, layer, step, shape, rate",
    [
        (0, 1, 0, (4, 5), 0.3),
        (11, 7, 123456, (3, 2, 4, 3), 0.5),
        (2**31 - 1, 3, 2**33 + 5, (2, 7), 0.9),
        (5, 0, 1, (6, 1), 0.0),
    ],
)
def test_dropout_mask_equals_numpy(seed, layer, step, shape, rate):
    mask = dropout_keep_mask(seed, layer, tf.constant(step, tf.int64), tf.constant(shape), rate)
    np.testing.assert_array_equal(mask.numpy(), numpy_keep_mask(seed, layer, step, shape, rate))


def test_dropout_layer_scales_kept_values_and_is_identity_at_inference():
    model = one_layer("{type: dropout, rate: 0.25}", (3, 4), extra="training: {loss: mse, seed: 9}")
    x = np.random.default_rng(0).normal(size=(5, 3, 4))
    keep = numpy_keep_mask(9, 0, 17, x.shape, 0.25)
    trained = model.forward(x, training=True, step=17)["dropout_1"]
    # (Within one ulp: inside a tf.function grappler may turn "/ 0.75" into "* (1 / 0.75)".)
    np.testing.assert_array_equal(trained == 0, ~keep)
    np.testing.assert_allclose(trained, np.where(keep, x / 0.75, 0.0), rtol=3e-16, atol=0)
    assert not np.array_equal(trained, model.forward(x, training=True, step=18)["dropout_1"])
    np.testing.assert_array_equal(model.forward(x)["dropout_1"], x)
    np.testing.assert_array_equal(model.predict(x), x)
    assert model.native_param_count() == 0


# --- convolution and pooling: hand-computed -----------------------------------------


GRID = np.arange(16.0).reshape(1, 4, 4, 1)  # GRID[0, i, j, 0] = 4 i + j


def test_avgpool_same_averages_real_positions_only():
    model = one_layer("{type: avgpool2d, pool_size: 3, strides: 2, padding: same}", (4, 4, 1))
    # 4 -> 2 outputs: total pad 1, all after; the second window per axis has 2 real rows/cols.
    expected = [
        [(0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10) / 9, (2 + 3 + 6 + 7 + 10 + 11) / 6],
        [(8 + 9 + 10 + 12 + 13 + 14) / 6, (10 + 11 + 14 + 15) / 4],
    ]
    np.testing.assert_allclose(model.predict(GRID)[0, :, :, 0], expected, rtol=1e-15)


def test_maxpool_same_never_selects_padding():
    model = one_layer("{type: maxpool2d, pool_size: 2, strides: 2, padding: same}", (3, 3, 1))
    x = -1.0 - np.arange(9.0).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(model.predict(x)[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])


def test_conv_same_puts_the_extra_padding_after():
    model = one_layer("{type: conv2d, filters: 1, kernel_size: 2, padding: same, use_bias: false}", (4, 4, 1))
    kernel = np.zeros((2, 2, 1, 1))
    kernel[0, 0] = 1.0  # reads x[i, j]: unshifted only if the padding is bottom/right
    model.set_weights({"conv2d_1.kernel": kernel})
    np.testing.assert_array_equal(model.predict(GRID), GRID)


def test_flatten_is_row_major_over_channels_last():
    model = one_layer("{type: flatten}", (2, 3, 2))
    x = np.arange(12.0).reshape(1, 2, 3, 2)
    np.testing.assert_array_equal(model.predict(x), x.reshape(1, 12))


# --- normalisation -----------------------------------------------------------------


def test_batch_norm_training_uses_and_stores_the_biased_variance():
    model = one_layer("{type: batch_norm, momentum: 0.75, epsilon: 0.5}", (1,))
    x = np.array([[1.0], [2.0], [6.0]])  # mean 3, biased variance 14/3
    output = model.forward(x, training=True)["batch_norm_1"]
    np.testing.assert_allclose(output[:, 0], (x[:, 0] - 3.0) / np.sqrt(14 / 3 + 0.5), rtol=1e-15)
    weights = model.get_weights()
    assert weights["batch_norm_1.moving_mean"][0] == pytest.approx(0.25 * 3.0, rel=1e-15)
    assert weights["batch_norm_1.moving_variance"][0] == pytest.approx(0.75 + 0.25 * 14 / 3, rel=1e-15)
    inference = model.forward(x)["batch_norm_1"]
    np.testing.assert_allclose(inference[:, 0], (x[:, 0] - 0.75) / np.sqrt(0.75 + 0.25 * 14 / 3 + 0.5), rtol=1e-15)


def test_layer_norm_uses_the_biased_variance():
    model = one_layer("{type: layer_norm, epsilon: 0.25}", (3,))
    x = np.array([[1.0, 2.0, 6.0]])
    np.testing.assert_allclose(model.predict(x), (x - 3.0) / np.sqrt(14 / 3 + 0.25), rtol=1e-15)


# --- layout -------------------------------------------------------------------------


def test_gru_biases_are_the_two_rows_of_keras_bias():
    model = one_layer("{id: g, type: gru, units: 2}", (3, 4))
    bias, recurrent_bias = np.arange(6.0), 10 + np.arange(6.0)
    model.set_weights({**model.get_weights(), "g.bias": bias, "g.recurrent_bias": recurrent_bias})
    np.testing.assert_array_equal(model.native.get_layer("g").cell.bias.numpy(), [bias, recurrent_bias])
    slots = model.slots
    assert slots["g.bias"].row == 0 and slots["g.recurrent_bias"].row == 1
    assert len(model.arrays) == 3


def test_lstm_gate_order_is_keras_i_f_g_o():
    """With only the output gate's bias large and the cell candidate fixed, h = tanh(c) * sigmoid(o)."""
    model = one_layer("{id: l, type: lstm, units: 1}", (1, 1))
    bias = np.array([5.0, 0.0, 0.5, -1.0])  # i, f, g, o
    model.set_weights({"l.kernel": np.zeros((1, 4)), "l.recurrent_kernel": np.zeros((1, 4)), "l.bias": bias})
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sigmoid(5.0) * np.tanh(0.5)
    assert model.predict(np.zeros((1, 1, 1)))[0, 0] == pytest.approx(sigmoid(-1.0) * np.tanh(c), rel=1e-15)


# --- devices ------------------------------------------------------------------------


def test_devices():
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    assert resolve_device("cpu") == "/CPU:0"
    assert resolve_device("auto") == ("/GPU:0" if has_gpu else "/CPU:0")
    if not has_gpu:
        with pytest.raises(BackendUnavailableError, match="GPU"):
            resolve_device("cuda")
    with pytest.raises(UsageError, match="device"):
        resolve_device("tpu")
