"""Torch layers against torch's stock modules, hand-computable facts and the neutral dropout stream."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import archspec
from archspec.backends.torch import layers as torch_layers
from archspec.backends.torch import random as torch_random
from archspec.graph import layer_types
from archspec.random import dropout_keep_mask, keep_threshold

RNG = np.random.default_rng(0)


def compile_one(layer: str, shape, *, dtype="float64", input_dtype="float", training=""):
    """A one-layer model (flow-style YAML ``layer``) on an input of ``shape``."""
    text = f"""
name: one-layer
inputs:
  x: {{shape: {list(shape)}, dtype: {input_dtype}}}
layers:
  - {layer}
{training}
"""
    return archspec.compile(text, backend="torch", dtype=dtype)


def as_tensor(array):
    return torch.from_numpy(np.asarray(array))


def test_every_layer_type_has_a_builder():
    assert set(torch_layers.BUILDERS) == set(layer_types())


def test_dense_is_x_at_kernel_plus_bias_on_the_last_axis():
    model = compile_one("{id: d, type: dense, units: 3}", [2, 4])
    x = RNG.normal(size=(5, 2, 4))
    w = model.get_weights()
    np.testing.assert_allclose(model.predict(x), x @ w["d.kernel"] + w["d.bias"], rtol=1e-14, atol=1e-15)
    assert model.native.layers["d"].weight.shape == (3, 4)  # torch's (out, in)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("relu", lambda x: np.maximum(x, 0)),
        ("leaky_relu", lambda x: np.where(x >= 0, x, 0.2 * x)),
        ("elu", lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
        ("gelu", lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
        ("silu", lambda x: x / (1 + np.exp(-x))),
        ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
        ("tanh", np.tanh),
        ("softmax", lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
        ("linear", lambda x: x),
    ],
)
def test_activations(name, expected):
    model = compile_one(f"{{type: activation, activation: {name}}}", [6])
    x = RNG.normal(size=(4, 6)) * 3
    np.testing.assert_allclose(model.predict(x), expected(x), rtol=1e-13, atol=1e-15)


def conv_model(options, shape=(8, 7, 3)):
    model = compile_one(f"{{id: c, type: conv2d, filters: 4, {options}}}", shape)
    weights = model.get_weights()
    stock_weight = as_tensor(weights["c.kernel"].transpose(3, 2, 0, 1))
    return model, weights, stock_weight, RNG.normal(size=(2, *shape))


@pytest.mark.parametrize(
    "options, stride, dilation",
    [
        ("kernel_size: 3", 1, 1),
        ("kernel_size: [3, 2], strides: [2, 3]", (2, 3), 1),
        ("kernel_size: 2, dilation_rate: 2", 1, 2),
    ],
)
def test_valid_conv2d_equals_nn_conv2d_on_channels_first(options, stride, dilation):
    model, weights, weight, x = conv_model(options)
    expected = nn.functional.conv2d(
        as_tensor(x).permute(0, 3, 1, 2), weight, as_tensor(weights["c.bias"]), stride=stride, dilation=dilation
    ).permute(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x), expected.numpy(), rtol=1e-13, atol=1e-14)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_conv2d_with_an_even_kernel_pads_the_extra_row_after_like_torch_same():
    model, weights, weight, x = conv_model("kernel_size: [2, 4], padding: same")
    stock = nn.Conv2d(3, 4, (2, 4), padding="same", dtype=torch.float64)
    with torch.no_grad():
        stock.weight.copy_(weight)
        stock.bias.copy_(as_tensor(weights["c.bias"]))
        expected = stock(as_tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x), expected.numpy(), rtol=1e-13, atol=1e-14)


def test_strided_same_conv2d_pads_like_tensorflow():
    # 8 rows, kernel 3, stride 2: total = (4 - 1) * 2 + 3 - 8 = 1 -> 0 above, 1 below.
    # 7 columns, kernel 2, stride 2: total = (4 - 1) * 2 + 2 - 7 = 1 -> 0 left, 1 right.
    model, weights, weight, x = conv_model("kernel_size: [3, 2], strides: 2, padding: same")
    padded = nn.functional.pad(as_tensor(x).permute(0, 3, 1, 2), (0, 1, 0, 1))
    expected = nn.functional.conv2d(padded, weight, as_tensor(weights["c.bias"]), stride=2).permute(0, 2, 3, 1)
    assert model.predict(x).shape == (2, 4, 4, 4)
    np.testing.assert_allclose(model.predict(x), expected.numpy(), rtol=1e-13, atol=1e-14)


def test_flatten_after_conv_is_row_major_over_height_width_channels():
    model = archspec.compile(
        """
name: conv-flatten
inputs: {x: {shape: [4, 5, 2]}}
layers:
  - {id: c, type: conv2d, filters: 3, kernel_size: 2}
  - {id: f, type: flatten}
outputs: [c, f]
""",
        backend="torch",
        dtype="float64",
    )
    out = model.predict(RNG.normal(size=(2, 4, 5, 2)))
    np.testing.assert_array_equal(out["f"], out["c"].reshape(2, -1))


def test_maxpool_same_never_picks_padding_and_avgpool_same_averages_real_positions():
    x = -np.ones((1, 3, 3, 1)) - np.arange(9.0).reshape(1, 3, 3, 1)  # all negative: a zero pad would win
    maxpool = compile_one("{type: maxpool2d, pool_size: 2, padding: same}", [3, 3, 1])
    np.testing.assert_array_equal(maxpool.predict(x)[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])
    avgpool = compile_one("{type: avgpool2d, pool_size: 2, padding: same}", [3, 3, 1])
    np.testing.assert_allclose(avgpool.predict(x)[0, :, :, 0], [[-3.0, -4.5], [-7.5, -9.0]], rtol=1e-15)


def test_symmetric_same_avgpool_equals_torch_count_include_pad_false():
    model = compile_one("{type: avgpool2d, pool_size: 3, strides: 1, padding: same}", [5, 4, 2])
    x = RNG.normal(size=(2, 5, 4, 2))
    stock = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
    expected = stock(as_tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x), expected.numpy(), rtol=1e-14)


def test_global_avgpool_is_the_mean_over_height_and_width():
    model = compile_one("{type: global_avgpool2d}", [3, 4, 2])
    x = RNG.normal(size=(2, 3, 4, 2))
    np.testing.assert_allclose(model.predict(x), x.mean(axis=(1, 2)), rtol=1e-14)


def test_batch_norm_uses_keras_momentum_and_the_biased_variance():
    model = compile_one(
        "{id: bn, type: batch_norm, momentum: 0.9, epsilon: 0.01}", [3], training="training: {loss: mse}"
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
    # torch's BatchNorm1d with momentum 1 - 0.9 agrees on the mean; its variance is unbiased.
    stock = nn.BatchNorm1d(3, momentum=0.1, dtype=torch.float64)
    stock.running_mean.fill_(1.0)
    stock(as_tensor(x))
    np.testing.assert_allclose(weights["bn.moving_mean"], stock.running_mean.numpy(), rtol=1e-14)
    # Inference uses the moving statistics, as torch's eval mode does.
    stock.eval()
    with torch.no_grad():
        stock.running_var.copy_(as_tensor(weights["bn.moving_variance"]))
        stock.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        stock.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))
        stock.eps = 0.01
        np.testing.assert_allclose(model.predict(x), stock(as_tensor(x)).numpy(), rtol=1e-13, atol=1e-15)


def test_layer_norm_equals_nn_layer_norm():
    model = compile_one("{id: ln, type: layer_norm, epsilon: 0.01}", [3, 5])
    weights = {"ln.gamma": RNG.normal(size=5), "ln.beta": RNG.normal(size=5)}
    model.set_weights(weights)
    stock = nn.LayerNorm(5, eps=0.01, dtype=torch.float64)
    with torch.no_grad():
        stock.weight.copy_(as_tensor(weights["ln.gamma"]))
        stock.bias.copy_(as_tensor(weights["ln.beta"]))
        x = RNG.normal(size=(2, 3, 5))
        np.testing.assert_allclose(model.predict(x), stock(as_tensor(x)).numpy(), rtol=1e-13, atol=1e-15)


def test_embedding_looks_up_rows():
    model = compile_one("{id: e, type: embedding, input_dim: 7, output_dim: 3}", [4], input_dtype="int32")
    ids = np.array([[0, 6, 2, 2], [5, 1, 0, 3]], dtype=np.int32)
    np.testing.assert_array_equal(model.predict(ids), model.get_weights()["e.embeddings"][ids])


def stock_recurrent(cls, model, prefix, **options):
    """A stock nn.RNN/LSTM/GRU holding ``model``'s weights (converted by hand, per docs/layout.md)."""
    weights = model.get_weights()
    stock = cls(4, 3, batch_first=True, dtype=torch.float64, **options)
    directions = [("forward", "")] + ([("backward", "_reverse")] if options.get("bidirectional") else [])
    with torch.no_grad():
        for direction, suffix in directions:
            name = f"{prefix}.{direction}" if options.get("bidirectional") else prefix
            swap = (
                (lambda a: np.concatenate([np.split(a, 3, -1)[i] for i in (1, 0, 2)], -1))
                if cls is nn.GRU
                else (lambda a: a)
            )
            getattr(stock, f"weight_ih_l0{suffix}").copy_(as_tensor(swap(weights[f"{name}.kernel"]).T))
            getattr(stock, f"weight_hh_l0{suffix}").copy_(as_tensor(swap(weights[f"{name}.recurrent_kernel"]).T))
            getattr(stock, f"bias_ih_l0{suffix}").copy_(as_tensor(swap(weights[f"{name}.bias"])))
            recurrent_bias = weights.get(f"{name}.recurrent_bias", np.zeros_like(weights[f"{name}.bias"]))
            getattr(stock, f"bias_hh_l0{suffix}").copy_(as_tensor(swap(recurrent_bias)))
    return stock


@pytest.mark.parametrize(
    "layer, cls, options",
    [
        ("{id: r, type: simple_rnn, units: 3, return_sequences: true}", nn.RNN, {}),
        (
            "{id: r, type: simple_rnn, units: 3, activation: relu, return_sequences: true}",
            nn.RNN,
            {"nonlinearity": "relu"},
        ),
        ("{id: r, type: lstm, units: 3, return_sequences: true}", nn.LSTM, {}),
        ("{id: r, type: gru, units: 3, return_sequences: true}", nn.GRU, {}),
    ],
)
def test_recurrent_layers_equal_stock_modules(layer, cls, options):
    model = compile_one(layer, [6, 4])
    weights = {k: RNG.normal(size=v.shape) * 0.5 for k, v in model.get_weights().items()}
    model.set_weights(weights)
    x = RNG.normal(size=(3, 6, 4))
    expected, _ = stock_recurrent(cls, model, "r", **options)(as_tensor(x))
    np.testing.assert_allclose(model.predict(x), expected.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_gru_gate_order_is_update_reset_candidate():
    # With the update gate z saturated at 1 (huge z-block bias), h stays at its zero start.
    model = compile_one("{id: g, type: gru, units: 2}", [3, 2])
    weights = model.get_weights()
    weights["g.bias"] = np.array([50.0, 50.0, 0.0, 0.0, 1.0, 1.0])
    model.set_weights(weights)
    np.testing.assert_allclose(model.predict(RNG.normal(size=(2, 3, 2))), 0.0, atol=1e-15)


@pytest.mark.parametrize(
    "merge, combine",
    [
        ("concat", lambda f, b: np.concatenate([f, b], -1)),
        ("sum", lambda f, b: f + b),
        ("mul", lambda f, b: f * b),
        ("ave", lambda f, b: (f + b) / 2),
    ],
)
def test_bidirectional_lstm_equals_stock_bidirectional(merge, combine):
    model = compile_one(
        f"{{id: bi, type: bidirectional, merge_mode: {merge}, "
        "layer: {type: lstm, units: 3, return_sequences: true}}",
        [5, 4],
    )
    x = RNG.normal(size=(2, 5, 4))
    stock, _ = stock_recurrent(nn.LSTM, model, "bi", bidirectional=True)(as_tensor(x))
    stock = stock.detach().numpy()
    np.testing.assert_allclose(model.predict(x), combine(stock[..., :3], stock[..., 3:]), rtol=1e-12, atol=1e-14)


def test_bidirectional_without_sequences_returns_the_backward_state_after_step_zero():
    model = compile_one("{id: bi, type: bidirectional, layer: {type: gru, units: 3}}", [5, 4])
    x = RNG.normal(size=(2, 5, 4))
    stock, _ = stock_recurrent(nn.GRU, model, "bi", bidirectional=True)(as_tensor(x))
    stock = stock.detach().numpy()
    expected = np.concatenate([stock[:, -1, :3], stock[:, 0, 3:]], -1)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-12, atol=1e-14)


def test_merges():
    model = archspec.compile(
        """
name: merges
inputs: {a: {shape: [2, 3]}, b: {shape: [2, 3]}}
layers:
  - {id: s, type: add, inputs: [a, b, a]}
  - {id: p, type: multiply, inputs: [a, b]}
  - {id: c0, type: concatenate, axis: 0, inputs: [a, b]}
  - {id: c1, type: concatenate, axis: 1, inputs: [a, b]}
outputs: [s, p, c0, c1]
""",
        backend="torch",
        dtype="float64",
    )
    a, b = RNG.normal(size=(4, 2, 3)), RNG.normal(size=(4, 2, 3))
    out = model.predict({"a": a, "b": b})
    np.testing.assert_allclose(out["s"], a + b + a, rtol=1e-15)
    np.testing.assert_allclose(out["p"], a * b, rtol=1e-15)
    np.testing.assert_array_equal(out["c0"], np.concatenate([a, b], 1))
    np.testing.assert_array_equal(out["c1"], np.concatenate([a, b], 2))


@pytest.mark.parametrize(
    "seed, layer, step, shape, rate",
    [
        (0, 0, 0, (4, 7), 0.5),
        (7, 3, 123, (3, 2, 5), 0.2),
        (2**31 - 1, 12, 2**40 + 5, (2, 9), 0.9),
        (1, 1, 1, (5, 3), 0.0),
    ],
)
@pytest.mark.parametrize("host_step", [False, True], ids=["tensor-step", "python-int-step"])
def test_dropout_mask_equals_the_neutral_numpy_mask(seed, layer, step, shape, rate, host_step):
    mixed = torch_random.element_hashes(math.prod(shape[1:]))
    positions = torch_random.mix32(torch.arange(shape[0], dtype=torch.int64).unsqueeze(1))
    mask = torch_random.keep_mask(
        torch_random.layer_prefix(seed, layer),
        step if host_step else torch.tensor(step),
        positions,
        mixed,
        keep_threshold(rate),
    )
    np.testing.assert_array_equal(mask.reshape(shape).numpy(), dropout_keep_mask(seed, layer, step, shape, rate))


def test_dropout_layer_scales_kept_units_and_is_the_identity_at_inference():
    model = compile_one("{type: dropout, rate: 0.25}", [4, 5], training="training: {loss: mse, seed: 11}")
    x = RNG.normal(size=(6, 4, 5))
    out = model.forward(x, training=True, step=9)["dropout_1"]
    keep = dropout_keep_mask(11, 0, 9, x.shape, 0.25)
    np.testing.assert_array_equal(out, np.where(keep, x / 0.75, 0.0))
    assert 0.6 < keep.mean() < 0.9
    assert not np.array_equal(out, model.forward(x, training=True, step=10)["dropout_1"])
    np.testing.assert_array_equal(model.predict(x), x)
