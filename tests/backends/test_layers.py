"""Single layers of every backend against hand-computed facts, the numpy reference and the neutral dropout stream."""

import math

import numpy as np
import pytest

from archspec.definitions.positions import sinusoidal_table
from archspec.graph import layer_types
from archspec.random import dropout_keep_mask
from archspec.reference.activations import activation as reference_activation
from archspec.support import builders

RNG = np.random.default_rng(0)


def one_layer(backend, layer: str, shape, *, dtype="float64", input_dtype="float", training=""):
    """A one-layer model (flow-style YAML ``layer``) on an input of per-sample ``shape``."""
    text = f"""
name: one-layer
inputs:
  x: {{shape: {list(shape)}, dtype: {input_dtype}}}
layers:
  - {layer}
{training}
"""
    return backend.compile(text, dtype=dtype)


def test_every_layer_type_has_a_builder(backend):
    assert builders(backend.name) == set(layer_types())


# --- core -----------------------------------------------------------------------------


def test_dense_is_x_at_kernel_plus_bias_on_the_last_axis(backend):
    model = one_layer(backend, "{id: d, type: dense, units: 3}", [2, 4])
    x = RNG.normal(size=(5, 2, 4))
    w = model.get_weights()
    np.testing.assert_allclose(model.predict(x), x @ w["d.kernel"] + w["d.bias"], rtol=1e-14, atol=1e-15)


# --- activations ----------------------------------------------------------------------

ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "log_softmax": lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
    "linear": lambda x: x,
}

POINTS = np.array([[-30.0, -2.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 30.0]])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_equals_its_formula(backend, name):
    model = one_layer(backend, f"{{type: activation, activation: {name}}}", [6])
    x = RNG.normal(size=(4, 6)) * 3
    np.testing.assert_allclose(model.predict(x), ACTIVATIONS[name](x), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_equals_the_reference(backend, name):
    value = backend.activation(name)(POINTS)
    # log_softmax at the row maximum is -log(1 + s) for a tiny s: 1 + s holds s only to the
    # round-off of 1, so there the bound is absolute (an ulp of 1), not relative.
    atol = 2.3e-16 if name == "log_softmax" else 1e-300
    np.testing.assert_allclose(value, reference_activation(name, POINTS), rtol=1e-15, atol=atol)


def test_gelu_is_exact_not_tanh_approximation(backend):
    assert backend.activation("gelu")(np.array([1.0]))[0] == pytest.approx(0.8413447460685429, rel=1e-15)


@pytest.mark.parametrize("name, slope", [("relu", 0.0), ("leaky_relu", 0.2), ("elu", 1.0)])
def test_activation_gradient_at_zero_is_torch_s(backend, name, slope):
    assert backend.activation_gradient(name, np.array([0.0]))[0] == slope


# --- dropout --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, layer, step, shape, rate",
    [
        (0, 0, 0, (4, 7), 0.5),
        (7, 3, 123, (3, 2, 5), 0.2),
        (2**31 - 1, 12, 2**40 + 5, (2, 9), 0.9),
        (1, 1, 1, (5, 3), 0.0),
        (0, 1, 0, (4, 5), 0.3),
        (11, 7, 123456, (3, 2, 4, 3), 0.5),
        (2**31 - 1, 3, 2**33 + 5, (2, 7), 0.9),
        (5, 0, 1, (6, 1), 0.0),
        (3, 2, 8, (2, 6), 1.0),
        (4, 9, 77, (16, 64), 0.1),
    ],
)
def test_dropout_mask_equals_the_neutral_numpy_mask(backend, seed, layer, step, shape, rate):
    mask = backend.keep_mask(seed, layer, step, shape, rate)
    np.testing.assert_array_equal(mask, dropout_keep_mask(seed, layer, step, shape, rate))


@pytest.mark.parametrize("seed, step, shape", [(11, 9, (6, 4, 5)), (9, 17, (5, 3, 4))])
def test_dropout_layer_scales_kept_units_and_is_the_identity_at_inference(backend, seed, step, shape):
    model = one_layer(
        backend, "{type: dropout, rate: 0.25}", shape[1:], training=f"training: {{loss: mse, seed: {seed}}}"
    )
    x = RNG.normal(size=shape)
    out = model.forward(x, training=True, step=step)["dropout_1"]
    keep = dropout_keep_mask(seed, 0, step, x.shape, 0.25)
    np.testing.assert_array_equal(out == 0, ~keep)
    np.testing.assert_allclose(out, np.where(keep, x / 0.75, 0.0), rtol=3e-16, atol=0)
    if backend.exact_dropout_scaling:
        np.testing.assert_array_equal(out, np.where(keep, x / 0.75, 0.0))
    assert 0.6 < keep.mean() < 0.9
    assert not np.array_equal(out, model.forward(x, training=True, step=step + 1)["dropout_1"])
    np.testing.assert_array_equal(model.forward(x)["dropout_1"], x)
    np.testing.assert_array_equal(model.predict(x), x)
    assert model.native_param_count() == 0


# --- convolution and pooling: hand-computed --------------------------------------------

GRID = np.arange(16.0).reshape(1, 4, 4, 1)  # GRID[0, i, j, 0] = 4 i + j


def test_conv_same_puts_the_extra_padding_after(backend):
    model = one_layer(backend, "{type: conv2d, filters: 1, kernel_size: 2, padding: same, use_bias: false}", (4, 4, 1))
    kernel = np.zeros((2, 2, 1, 1))
    kernel[0, 0] = 1.0  # reads x[i, j]: unshifted only if the padding is bottom/right
    model.set_weights({"conv2d_1.kernel": kernel})
    np.testing.assert_array_equal(model.predict(GRID), GRID)


def test_flatten_is_row_major_over_channels_last(backend):
    model = one_layer(backend, "{type: flatten}", (2, 3, 2))
    x = np.arange(12.0).reshape(1, 2, 3, 2)
    np.testing.assert_array_equal(model.predict(x), x.reshape(1, 12))


def test_flatten_after_conv_is_row_major_over_height_width_channels(backend):
    model = backend.compile(
        """
name: conv-flatten
inputs: {x: {shape: [4, 5, 2]}}
layers:
  - {id: c, type: conv2d, filters: 3, kernel_size: 2}
  - {id: f, type: flatten}
outputs: [c, f]
"""
    )
    out = model.predict(RNG.normal(size=(2, 4, 5, 2)))
    np.testing.assert_array_equal(out["f"], out["c"].reshape(2, -1))


@pytest.mark.parametrize("strides", ["", ", strides: 2"])
def test_maxpool_same_never_picks_padding(backend, strides):
    x = -np.ones((1, 3, 3, 1)) - np.arange(9.0).reshape(1, 3, 3, 1)  # all negative: a zero pad would win
    maxpool = one_layer(backend, f"{{type: maxpool2d, pool_size: 2{strides}, padding: same}}", [3, 3, 1])
    np.testing.assert_array_equal(maxpool.predict(x)[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])


def test_avgpool_same_averages_real_positions_only(backend):
    x = -np.ones((1, 3, 3, 1)) - np.arange(9.0).reshape(1, 3, 3, 1)
    avgpool = one_layer(backend, "{type: avgpool2d, pool_size: 2, padding: same}", [3, 3, 1])
    np.testing.assert_allclose(avgpool.predict(x)[0, :, :, 0], [[-3.0, -4.5], [-7.5, -9.0]], rtol=1e-15)
    model = one_layer(backend, "{type: avgpool2d, pool_size: 3, strides: 2, padding: same}", (4, 4, 1))
    # 4 -> 2 outputs: total pad 1, all after; the second window per axis has 2 real rows/cols.
    expected = [
        [(0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10) / 9, (2 + 3 + 6 + 7 + 10 + 11) / 6],
        [(8 + 9 + 10 + 12 + 13 + 14) / 6, (10 + 11 + 14 + 15) / 4],
    ]
    np.testing.assert_allclose(model.predict(GRID)[0, :, :, 0], expected, rtol=1e-15)


def test_global_avgpool_is_the_mean_over_height_and_width(backend):
    model = one_layer(backend, "{type: global_avgpool2d}", [3, 4, 2])
    x = RNG.normal(size=(2, 3, 4, 2))
    np.testing.assert_allclose(model.predict(x), x.mean(axis=(1, 2)), rtol=1e-14)


# --- normalisation --------------------------------------------------------------------


def test_batch_norm_uses_keras_momentum_and_the_biased_variance(backend):
    model = one_layer(
        backend, "{id: bn, type: batch_norm, momentum: 0.9, epsilon: 0.01}", [3], training="training: {loss: mse}"
    )
    model.set_weights(
        {
            "bn.gamma": np.array([1.0, 2.0, 3.0]),
            "bn.beta": np.array([0.5, 0.0, -1.0]),
            "bn.moving_mean": np.array([1.0, 1.0, 1.0]),
            "bn.moving_variance": np.array([2.0, 2.0, 2.0]),
        }
    )
    x = RNG.normal(size=(6, 3))
    out = model.forward(x, training=True)["bn"]
    mean, var = x.mean(0), x.var(0)  # numpy's var is the biased one
    np.testing.assert_allclose(out, [1.0, 2.0, 3.0] * (x - mean) / np.sqrt(var + 0.01) + [0.5, 0.0, -1.0], rtol=1e-13)
    weights = model.get_weights()
    np.testing.assert_allclose(weights["bn.moving_mean"], 0.9 * 1.0 + 0.1 * mean, rtol=1e-15)
    np.testing.assert_allclose(weights["bn.moving_variance"], 0.9 * 2.0 + 0.1 * var, rtol=1e-15)


def test_batch_norm_training_uses_and_stores_the_biased_variance(backend):
    model = one_layer(backend, "{type: batch_norm, momentum: 0.75, epsilon: 0.5}", (1,))
    x = np.array([[1.0], [2.0], [6.0]])  # mean 3, biased variance 14/3
    output = model.forward(x, training=True)["batch_norm_1"]
    np.testing.assert_allclose(output[:, 0], (x[:, 0] - 3.0) / np.sqrt(14 / 3 + 0.5), rtol=1e-15)
    weights = model.get_weights()
    assert weights["batch_norm_1.moving_mean"][0] == pytest.approx(0.25 * 3.0, rel=1e-15)
    assert weights["batch_norm_1.moving_variance"][0] == pytest.approx(0.75 + 0.25 * 14 / 3, rel=1e-15)
    inference = model.forward(x)["batch_norm_1"]
    np.testing.assert_allclose(inference[:, 0], (x[:, 0] - 0.75) / np.sqrt(0.75 + 0.25 * 14 / 3 + 0.5), rtol=1e-15)


def test_layer_norm_uses_the_biased_variance(backend):
    model = one_layer(backend, "{type: layer_norm, epsilon: 0.25}", (3,))
    x = np.array([[1.0, 2.0, 6.0]])
    np.testing.assert_allclose(model.predict(x), (x - 3.0) / np.sqrt(14 / 3 + 0.25), rtol=1e-15)


def test_embedding_looks_up_rows(backend):
    model = one_layer(backend, "{id: e, type: embedding, input_dim: 7, output_dim: 3}", [4], input_dtype="int32")
    ids = np.array([[0, 6, 2, 2], [5, 1, 0, 3]], dtype=np.int32)
    np.testing.assert_array_equal(model.predict(ids), model.get_weights()["e.embeddings"][ids])


# --- recurrent: gate orders -----------------------------------------------------------


def test_gru_gate_order_is_update_reset_candidate(backend):
    # With the update gate z saturated at 1 (huge z-block bias), h stays at its zero start.
    model = one_layer(backend, "{id: g, type: gru, units: 2}", [3, 2])
    weights = model.get_weights()
    weights["g.bias"] = np.array([50.0, 50.0, 0.0, 0.0, 1.0, 1.0])
    model.set_weights(weights)
    np.testing.assert_allclose(model.predict(RNG.normal(size=(2, 3, 2))), 0.0, atol=1e-15)


def test_lstm_gate_order_is_i_f_g_o(backend):
    """With only the output gate's bias large and the cell candidate fixed, h = tanh(c) * sigmoid(o)."""
    model = one_layer(backend, "{id: l, type: lstm, units: 1}", (1, 1))
    bias = np.array([5.0, 0.0, 0.5, -1.0])  # i, f, g, o
    model.set_weights({"l.kernel": np.zeros((1, 4)), "l.recurrent_kernel": np.zeros((1, 4)), "l.bias": bias})
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sigmoid(5.0) * np.tanh(0.5)
    assert model.predict(np.zeros((1, 1, 1)))[0, 0] == pytest.approx(sigmoid(-1.0) * np.tanh(c), rel=1e-15)


# --- attention and positions: hand-computed ------------------------------------------


def test_sinusoidal_position_embedding_adds_the_fixed_table_and_holds_no_parameter(backend):
    model = one_layer(backend, "{type: position_embedding, kind: sinusoidal, max_length: 9}", (5, 4))
    x = RNG.normal(size=(2, 5, 4))
    np.testing.assert_allclose(model.predict(x), x + sinusoidal_table(5, 4), rtol=1e-15, atol=1e-15)
    assert model.get_weights() == {}
    assert backend.native_param_counts(model) == [0] * len(backend.native_param_counts(model))


def test_attention_query_allowed_no_key_gets_zero_weights(backend):
    """Causal attention over ids with padding (id 0): a query whose only allowed keys are padded
    attends to nothing (its output is the output bias, no NaN), a query allowed one key copies
    that key's value, and the gradients stay finite."""
    model = backend.compile("""
name: no-key
inputs: {x: {shape: [4], dtype: int32}}
layers:
  - {id: e, type: embedding, input_dim: 6, output_dim: 4, mask_zero: true}
  - {id: a, type: multi_head_attention, num_heads: 2, key_dim: 3, causal: true, bias_initializer: glorot_uniform}
""")
    w = model.get_weights()
    ids = np.array([[0, 3, 0, 5], [0, 0, 0, 0]], dtype=np.int32)
    out = model.predict(ids)
    np.testing.assert_allclose(out[0, 0], w["a.output_bias"], rtol=1e-15)
    np.testing.assert_allclose(out[1], np.broadcast_to(w["a.output_bias"], (4, 4)), rtol=1e-15)
    value = w["e.embeddings"][3] @ w["a.value_kernel"] + w["a.value_bias"]  # query 1 sees key 1 only
    np.testing.assert_allclose(out[0, 1], value @ w["a.output_kernel"] + w["a.output_bias"], rtol=1e-13)
    params, _ = model.gradients(ids, {"a": RNG.normal(size=(2, 4, 4))})
    assert all(np.all(np.isfinite(grad)) for grad in params.values())


# --- merges ---------------------------------------------------------------------------


def test_merges(backend):
    model = backend.compile(
        """
name: merges
inputs: {a: {shape: [2, 3]}, b: {shape: [2, 3]}}
layers:
  - {id: s, type: add, inputs: [a, b, a]}
  - {id: p, type: multiply, inputs: [a, b]}
  - {id: c0, type: concatenate, axis: 0, inputs: [a, b]}
  - {id: c1, type: concatenate, axis: 1, inputs: [a, b]}
outputs: [s, p, c0, c1]
"""
    )
    a, b = RNG.normal(size=(4, 2, 3)), RNG.normal(size=(4, 2, 3))
    out = model.predict({"a": a, "b": b})
    np.testing.assert_allclose(out["s"], a + b + a, rtol=1e-15)
    np.testing.assert_allclose(out["p"], a * b, rtol=1e-15)
    np.testing.assert_array_equal(out["c0"], np.concatenate([a, b], 1))
    np.testing.assert_array_equal(out["c1"], np.concatenate([a, b], 2))
