"""Torch layers against torch's own stock modules (``nn.Conv2d``, ``nn.LSTM``, ...) and torch-only
details: the layout of the native parameters, the dropout step given as a Python int."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import archspec
from archspec.backends.torch import random as torch_random
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


def test_dense_weight_is_torch_s_out_by_in():
    model = compile_one("{id: d, type: dense, units: 3}", [2, 4])
    assert model.native.layers["d"].weight.shape == (3, 4)  # torch's (out, in)


def test_batch_norm_agrees_with_nn_batch_norm_1d_where_their_definitions_agree():
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
    model.forward(x, training=True)
    weights = model.get_weights()
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


@pytest.mark.parametrize(
    "seed, layer, step, shape, rate",
    [
        (0, 0, 0, (4, 7), 0.5),
        (7, 3, 123, (3, 2, 5), 0.2),
        (2**31 - 1, 12, 2**40 + 5, (2, 9), 0.9),
        (1, 1, 1, (5, 3), 0.0),
    ],
)
def test_dropout_mask_with_a_python_int_step_equals_the_neutral_numpy_mask(seed, layer, step, shape, rate):
    mixed = torch_random.element_hashes(math.prod(shape[1:]))
    positions = torch_random.mix32(torch.arange(shape[0], dtype=torch.int64).unsqueeze(1))
    mask = torch_random.keep_mask(torch_random.layer_prefix(seed, layer), step, positions, mixed, keep_threshold(rate))
    np.testing.assert_array_equal(mask.reshape(shape).numpy(), dropout_keep_mask(seed, layer, step, shape, rate))


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


def test_symmetric_same_avgpool_equals_torch_count_include_pad_false():
    model = compile_one("{type: avgpool2d, pool_size: 3, strides: 1, padding: same}", [5, 4, 2])
    x = RNG.normal(size=(2, 5, 4, 2))
    stock = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
    expected = stock(as_tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x), expected.numpy(), rtol=1e-14)


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


# --- sequences ------------------------------------------------------------------------


def test_causal_dilated_conv1d_equals_nn_conv1d_after_a_left_pad():
    # kernel 3, dilation 2: the window reaches (3 - 1) * 2 = 4 steps back, so 4 zeros go before.
    model = compile_one("{id: c, type: conv1d, filters: 4, kernel_size: 3, dilation_rate: 2, padding: causal}", [9, 3])
    weights = model.get_weights()
    x = RNG.normal(size=(2, 9, 3))
    padded = nn.functional.pad(as_tensor(x).permute(0, 2, 1), (4, 0))
    weight = as_tensor(weights["c.kernel"].transpose(2, 1, 0))  # (k, in, out) -> nn.Conv1d's (out, in, k)
    expected = nn.functional.conv1d(padded, weight, as_tensor(weights["c.bias"]), dilation=2).permute(0, 2, 1)
    assert model.native.layers["c"].weight.shape == (4, 3, 3)
    np.testing.assert_allclose(model.predict(x), expected.numpy(), rtol=1e-13, atol=1e-14)
    # Output step t reads input steps up to t only: changing the last step changes only the last output.
    later = x.copy()
    later[:, -1] += 1.0
    np.testing.assert_array_equal(model.predict(later)[:, :-1], model.predict(x)[:, :-1])


def attention_weights(rng, query_features, key_features, value_features, heads, key_dim, output_dim):
    """Canonical weights of an attention layer named ``a`` (value_dim = key_dim)."""
    width = heads * key_dim
    shapes = {
        "query_kernel": (query_features, width),
        "key_kernel": (key_features, width),
        "value_kernel": (value_features, width),
        "output_kernel": (width, output_dim),
        "query_bias": (width,),
        "key_bias": (width,),
        "value_bias": (width,),
        "output_bias": (output_dim,),
    }
    return {f"a.{name}": rng.normal(scale=0.5, size=shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_equals_nn_multihead_attention_with_packed_in_proj(causal):
    # heads * key_dim == features: torch packs the three input projections into in_proj_weight.
    model = compile_one(
        f"{{id: a, type: multi_head_attention, num_heads: 2, key_dim: 3, causal: {str(causal).lower()}}}", [5, 6]
    )
    weights = attention_weights(RNG, 6, 6, 6, 2, 3, 6)
    model.set_weights(weights)
    stock = nn.MultiheadAttention(6, 2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        kernels = [weights[f"a.{p}_kernel"].T for p in ("query", "key", "value")]  # each (heads*key_dim, features)
        stock.in_proj_weight.copy_(as_tensor(np.concatenate(kernels, axis=0)))
        stock.in_proj_bias.copy_(as_tensor(np.concatenate([weights[f"a.{p}_bias"] for p in ("query", "key", "value")])))
        stock.out_proj.weight.copy_(as_tensor(weights["a.output_kernel"].T))
        stock.out_proj.bias.copy_(as_tensor(weights["a.output_bias"]))
        x = as_tensor(RNG.normal(size=(3, 5, 6)))
        mask = torch.ones(5, 5, dtype=torch.bool).triu(1) if causal else None  # True: may not attend
        expected, _ = stock(x, x, x, attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(model.predict(x.numpy()), expected.numpy(), rtol=1e-12, atol=1e-13)


def test_cross_attention_equals_nn_multihead_attention_with_separate_projections():
    # key and value features differ from the query's: torch keeps q_proj_weight, k_proj_weight, v_proj_weight.
    model = archspec.compile(
        """
name: cross
inputs: {q: {shape: [4, 6]}, v: {shape: [7, 3]}, k: {shape: [7, 5]}}
layers:
  - {id: a, type: multi_head_attention, num_heads: 3, key_dim: 2, inputs: [q, v, k]}
""",
        backend="torch",
        dtype="float64",
    )
    weights = attention_weights(RNG, 6, 5, 3, 3, 2, 6)
    model.set_weights(weights)
    stock = nn.MultiheadAttention(6, 3, kdim=5, vdim=3, batch_first=True, dtype=torch.float64)
    inputs = {"q": RNG.normal(size=(2, 4, 6)), "v": RNG.normal(size=(2, 7, 3)), "k": RNG.normal(size=(2, 7, 5))}
    with torch.no_grad():
        stock.q_proj_weight.copy_(as_tensor(weights["a.query_kernel"].T))
        stock.k_proj_weight.copy_(as_tensor(weights["a.key_kernel"].T))
        stock.v_proj_weight.copy_(as_tensor(weights["a.value_kernel"].T))
        biases = [weights[f"a.{p}_bias"] for p in ("query", "key", "value")]
        stock.in_proj_bias.copy_(as_tensor(np.concatenate(biases)))
        stock.out_proj.weight.copy_(as_tensor(weights["a.output_kernel"].T))
        stock.out_proj.bias.copy_(as_tensor(weights["a.output_bias"]))
        expected, _ = stock(*(as_tensor(inputs[name]) for name in ("q", "k", "v")), need_weights=False)
    np.testing.assert_allclose(model.predict(inputs), expected.numpy(), rtol=1e-12, atol=1e-13)
