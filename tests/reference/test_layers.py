"""The numpy reference layers against hand-computed values, and a forward pass of every config."""

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from archspec.api import load_with_graph
from archspec.errors import DataError, UsageError
from archspec.graph import layer_types, resolve
from archspec.initializers import canonical_weights
from archspec.random import dropout_keep_mask
from archspec.reference.activations import ACTIVATIONS, activation
from archspec.reference.forward import reference_forward
from archspec.reference.layers import (
    REFERENCE_LAYERS,
    LayerContext,
    padding_amounts,
    reference_layer,
)
from archspec.spec import Spec
from archspec.spec.layers import LAYER_TYPES, layer_type_name

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
LAYER_CLASSES = {layer_type_name(cls): cls for cls in LAYER_TYPES}


def make(type_, **options):
    return LAYER_CLASSES[type_].model_validate({"type": type_, **options})


def run(layer, params, *inputs, training=False, context=None):
    return REFERENCE_LAYERS[layer.type](layer, params, list(inputs), training, context or LayerContext())


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def image(values):
    """A (1, h, w, 1) batch from a 2-D list."""
    return np.asarray(values, dtype=np.float64)[None, :, :, None]


GRID = np.arange(16.0).reshape(4, 4)  # GRID[i, j] = 4 * i + j


# --- registry and activations -----------------------------------------------------


def test_registry_covers_every_layer_type():
    assert set(REFERENCE_LAYERS) == set(layer_types())


def test_unknown_layer_type_lists_the_known_ones():
    with pytest.raises(UsageError, match="conv2d"):
        reference_layer("conv3d")


@pytest.mark.parametrize(
    "name, x, expected",
    [
        ("linear", -1.5, -1.5),
        ("relu", -1.5, 0.0),
        ("relu", 2.0, 2.0),
        ("leaky_relu", -2.0, -0.4),
        ("leaky_relu", 3.0, 3.0),
        ("elu", -1.0, math.exp(-1.0) - 1.0),
        ("elu", 2.0, 2.0),
        ("gelu", 1.0, 0.8413447460685429),  # 1 * Phi(1); the tanh approximation gives 0.84119...
        ("gelu", -1.0, -0.15865525393145707),
        ("silu", 1.0, 1.0 / (1.0 + math.exp(-1.0))),
        ("sigmoid", 0.0, 0.5),
        ("sigmoid", -800.0, 0.0),
        ("tanh", 0.5, math.tanh(0.5)),
    ],
)
def test_activation_values(name, x, expected):
    assert activation(name, np.array([x]))[0] == pytest.approx(expected, rel=1e-15, abs=1e-300)


def test_elu_large_inputs_do_not_warn():
    with np.errstate(over="raise"):
        assert activation("elu", np.array([1000.0]))[0] == 1000.0


def test_softmax_is_stable_on_the_last_axis():
    big = activation("softmax", np.array([[1000.0, 1000.0, 999.0], [-1000.0, 0.0, -1000.0]]))
    e = math.exp(-1.0)
    np.testing.assert_allclose(big[0], [1 / (2 + e), 1 / (2 + e), e / (2 + e)], rtol=1e-15)
    np.testing.assert_array_equal(big[1], [0.0, 1.0, 0.0])
    sequence = activation("softmax", np.zeros((2, 3, 4)))
    np.testing.assert_array_equal(sequence, np.full((2, 3, 4), 0.25))


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(UsageError, match="gelu"):
        activation("swish", np.zeros(1))
    assert set(ACTIVATIONS) == {
        "linear",
        "relu",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
        "sigmoid",
        "tanh",
        "softmax",
        "log_softmax",
    }


def test_log_softmax_is_the_log_of_softmax_without_overflow():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(activation("log_softmax", x[:1]), np.log(activation("softmax", x[:1])), rtol=1e-15)
    np.testing.assert_array_equal(activation("log_softmax", x)[1], [0.0, -1000.0, -2000.0])


# --- core -------------------------------------------------------------------------


def test_dense_on_the_last_axis_returns_the_pre_activation():
    layer = make("dense", units=2, activation="relu")
    params = {"kernel": np.array([[1.0, -1.0], [2.0, 0.5], [0.0, -3.0]]), "bias": np.array([0.5, -1.0])}
    x = np.array([[[1.0, 2.0, 3.0]], [[-1.0, 0.0, 1.0]]])  # (N=2, T=1, F=3)
    out = run(layer, params, x)
    # [1, 2, 3] -> [1 + 4 + 0 + 0.5, -1 + 1 - 9 - 1]; [-1, 0, 1] -> [-1 + 0.5, 1 - 3 - 1]
    np.testing.assert_array_equal(out.pre_activation, [[[5.5, -10.0]], [[-0.5, -3.0]]])
    np.testing.assert_array_equal(out.output, [[[5.5, 0.0]], [[0.0, 0.0]]])


def test_dense_without_bias():
    layer = make("dense", units=1, use_bias=False)
    out = run(layer, {"kernel": np.array([[2.0], [3.0]])}, np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(out.output, [[5.0]])


def test_activation_layer_pre_is_its_input():
    x = np.array([[1.0, 2.0]])
    out = run(make("activation", activation="softmax"), {}, x)
    assert out.pre_activation is x
    np.testing.assert_allclose(out.output, [[1 / (1 + math.e), math.e / (1 + math.e)]], rtol=1e-15)


def test_dropout_uses_the_neutral_stream_only_in_training():
    layer = make("dropout", rate=0.25)
    x = np.arange(1.0, 2 * 3 * 50 + 1).reshape(2, 3, 50)
    assert run(layer, {}, x).output is x
    context = LayerContext(seed=7, layer_index=4, step=11)
    out = run(layer, {}, x, training=True, context=context).output
    keep = dropout_keep_mask(7, 4, 11, x.shape, 0.25)
    np.testing.assert_array_equal(out, np.where(keep, x / 0.75, 0.0))
    assert 0.6 < keep.mean() < 0.9
    other_step = run(layer, {}, x, training=True, context=LayerContext(7, 4, 12)).output
    assert not np.array_equal(other_step == 0, out == 0)


def test_flatten_and_reshape_are_row_major_over_channels_last():
    x = np.arange(2 * 2 * 2 * 3.0).reshape(2, 2, 2, 3)  # (N, H, W, C)
    flat = run(make("flatten"), {}, x).output
    assert flat.shape == (2, 12)
    # element (n, h, w, c) lands at h * 6 + w * 3 + c
    assert flat[1, 1 * 6 + 0 * 3 + 2] == x[1, 1, 0, 2]
    np.testing.assert_array_equal(flat[0], np.arange(12.0))
    back = run(make("reshape", target_shape=[2, -1]), {}, flat).output
    assert back.shape == (2, 2, 6)
    np.testing.assert_array_equal(back[1, 1], x[1, 1].reshape(-1))


# --- convolution and pooling --------------------------------------------------------


def conv(x, kernel, bias=None, **options):
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 2:
        kernel = kernel[:, :, None, None]
    layer = make(
        "conv2d", filters=kernel.shape[3], kernel_size=list(kernel.shape[:2]), use_bias=bias is not None, **options
    )
    params = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": np.asarray(bias, dtype=np.float64)}
    return run(layer, params, x)


def test_conv_3x3_valid_on_4x4_by_hand():
    ones = conv(image(GRID), np.ones((3, 3)), bias=[0.5]).output[0, :, :, 0]
    # sums of the four 3x3 windows of GRID, plus the bias
    np.testing.assert_array_equal(ones, [[45.5, 54.5], [81.5, 90.5]])
    # a single 1 at kernel (0, 2) picks GRID[i, j + 2]: a cross-correlation, the kernel is not flipped
    corner = np.zeros((3, 3))
    corner[0, 2] = 1.0
    np.testing.assert_array_equal(conv(image(GRID), corner).output[0, :, :, 0], [[2, 3], [6, 7]])


def test_conv_3x3_same_pads_one_on_each_side():
    out = conv(image(GRID), np.ones((3, 3)), padding="same").output[0, :, :, 0]
    assert out.shape == (4, 4)
    assert out[0, 0] == 0 + 1 + 4 + 5
    assert out[3, 3] == 10 + 11 + 14 + 15
    assert out[1, 1] == 45


def test_even_kernel_same_padding_puts_the_extra_row_after():
    x = image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert padding_amounts(3, 2, 1, 1, "same") == (0, 1)
    top_left = conv(x, [[1, 0], [0, 0]], padding="same").output[0, :, :, 0]
    np.testing.assert_array_equal(top_left, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    bottom_right = conv(x, [[0, 0], [0, 1]], padding="same").output[0, :, :, 0]
    np.testing.assert_array_equal(bottom_right, [[5, 6, 0], [8, 9, 0], [0, 0, 0]])


def test_strided_same_conv_on_4x4_pads_only_after():
    assert padding_amounts(4, 3, 2, 1, "same") == (0, 1)
    corner = np.zeros((3, 3))
    corner[0, 0] = 1.0
    out = conv(image(GRID), corner, strides=2, padding="same").output[0, :, :, 0]
    np.testing.assert_array_equal(out, [[0, 2], [8, 10]])


def test_dilated_conv_reads_every_other_pixel():
    x = np.arange(25.0).reshape(5, 5)
    out = conv(image(x), np.ones((3, 3)), dilation_rate=2).output
    assert out.shape == (1, 1, 1, 1)
    assert out[0, 0, 0, 0] == x[::2, ::2].sum()


@pytest.mark.parametrize(
    "size, kernel, stride, dilation, padding, before, after",
    [
        (5, 3, 1, 1, "valid", 0, 0),
        (5, 3, 2, 1, "same", 1, 1),
        (6, 3, 2, 1, "same", 0, 1),
        (7, 2, 1, 2, "same", 1, 1),
        (7, 4, 3, 1, "same", 1, 2),
        (4, 1, 3, 1, "same", 0, 0),
    ],
)
def test_conv_matches_the_definition_written_as_loops(size, kernel, stride, dilation, padding, before, after):
    assert padding_amounts(size, kernel, stride, dilation, padding) == (before, after)
    rng = np.random.default_rng(size * 100 + kernel * 10 + stride)
    x = rng.normal(size=(2, size, size + 1, 3))
    weights = rng.normal(size=(kernel, kernel, 3, 4))
    bias = rng.normal(size=4)
    out = conv(x, weights, bias, strides=stride, dilation_rate=dilation, padding=padding)
    np.testing.assert_array_equal(out.output, out.pre_activation)
    width_before = padding_amounts(size + 1, kernel, stride, dilation, padding)[0]
    expected = np.zeros(out.output.shape)
    for n in range(2):
        for i in range(expected.shape[1]):
            for j in range(expected.shape[2]):
                for o in range(4):
                    total = bias[o]
                    for di in range(kernel):
                        for dj in range(kernel):
                            row = i * stride + di * dilation - before
                            col = j * stride + dj * dilation - width_before
                            if 0 <= row < size and 0 <= col < size + 1:
                                total += x[n, row, col, :] @ weights[di, dj, :, o]
                    expected[n, i, j, o] = total
    layer = make("conv2d", filters=4, kernel_size=kernel, strides=stride, dilation_rate=dilation, padding=padding)
    assert out.output.shape[1:] == layer.output_shape([x.shape[1:]])
    np.testing.assert_allclose(out.output, expected, rtol=1e-13, atol=1e-13)


NEGATIVE = -np.arange(1.0, 10.0).reshape(3, 3)  # [[-1, -2, -3], [-4, -5, -6], [-7, -8, -9]]


def test_maxpool_same_never_picks_padding():
    layer = make("maxpool2d", pool_size=2, padding="same")
    out = run(layer, {}, image(NEGATIVE)).output[0, :, :, 0]
    # windows rows [0:2] x cols [0:2], [0:2] x [2], [2] x [0:2], [2] x [2]; zero padding would give 0s
    np.testing.assert_array_equal(out, [[-1, -3], [-7, -9]])
    valid = run(make("maxpool2d", pool_size=2, strides=1), {}, image(NEGATIVE)).output[0, :, :, 0]
    np.testing.assert_array_equal(valid, [[-1, -2], [-4, -5]])


def test_avgpool_same_counts_only_real_positions():
    layer = make("avgpool2d", pool_size=2, padding="same")
    out = run(layer, {}, image(NEGATIVE)).output[0, :, :, 0]
    np.testing.assert_array_equal(out, [[-3.0, -4.5], [-7.5, -9.0]])
    strided = run(make("avgpool2d", pool_size=3, strides=2, padding="same"), {}, image(GRID)).output[0, :, :, 0]
    # 4x4, pool 3, stride 2: one row/column of padding, after: windows [0:3] and [2:4]
    np.testing.assert_array_equal(
        strided, [[GRID[:3, :3].mean(), GRID[:3, 2:].mean()], [GRID[2:, :3].mean(), GRID[2:, 2:].mean()]]
    )


def test_pools_keep_channels_apart():
    x = np.stack([GRID, -GRID], axis=-1)[None]  # (1, 4, 4, 2)
    out = run(make("maxpool2d", pool_size=2), {}, x).output
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[0, -2], [-8, -10]])
    mean = run(make("global_avgpool2d"), {}, x).output
    np.testing.assert_array_equal(mean, [[7.5, -7.5]])


# --- normalisation and embedding ----------------------------------------------------


def test_batch_norm_training_uses_biased_batch_stats_and_updates_moving_stats():
    layer = make("batch_norm", momentum=0.9, epsilon=0.01)
    x = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [6.0, 14.0]])
    params = {
        "gamma": np.array([2.0, 1.0]),
        "beta": np.array([0.5, 0.0]),
        "moving_mean": np.array([0.5, 0.0]),
        "moving_variance": np.array([2.0, 1.0]),
    }
    out = run(layer, params, x, training=True)
    # channel 0: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5; channel 1: mean 11, variance 3
    np.testing.assert_allclose(out.output[:, 0], 2.0 * (x[:, 0] - 3.0) / math.sqrt(3.51) + 0.5, rtol=1e-15)
    np.testing.assert_allclose(out.output[:, 1], (x[:, 1] - 11.0) / math.sqrt(3.01), rtol=1e-15)
    np.testing.assert_allclose(out.state["moving_mean"], [0.9 * 0.5 + 0.1 * 3.0, 0.1 * 11.0], rtol=1e-15)
    np.testing.assert_allclose(out.state["moving_variance"], [0.9 * 2.0 + 0.1 * 3.5, 0.9 + 0.1 * 3.0], rtol=1e-15)
    inference = run(layer, params, x)
    assert inference.state == {}
    np.testing.assert_allclose(inference.output[:, 0], 2.0 * (x[:, 0] - 0.5) / math.sqrt(2.01) + 0.5, rtol=1e-15)


def test_batch_norm_reduces_over_every_axis_but_channels():
    layer = make("batch_norm", center=False, scale=False, momentum=0.0)
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 2))
    params = {"moving_mean": np.zeros(2), "moving_variance": np.ones(2)}
    out = run(layer, params, x, training=True)
    channel = x[..., 1].ravel()
    np.testing.assert_allclose(out.state["moving_mean"][1], channel.mean(), rtol=1e-14)
    np.testing.assert_allclose(out.state["moving_variance"][1], channel.var(), rtol=1e-14)  # np.var is biased
    np.testing.assert_allclose(
        out.output[..., 1], (x[..., 1] - channel.mean()) / np.sqrt(channel.var() + 1e-3), rtol=1e-13
    )


def test_layer_norm_per_sample_last_axis():
    layer = make("layer_norm", epsilon=0.01)
    x = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    out = run(layer, {"gamma": np.full(4, 2.0), "beta": np.full(4, 1.0)}, x).output
    np.testing.assert_allclose(out[0], 2.0 * (x[0] - 3.0) / math.sqrt(3.51) + 1.0, rtol=1e-15)
    np.testing.assert_array_equal(out[1], np.ones(4))


def test_embedding_looks_up_rows_and_refuses_unknown_ids():
    layer = make("embedding", input_dim=3, output_dim=2)
    table = np.array([[0.0, 0.1], [1.0, 1.1], [2.0, 2.1]])
    out = run(layer, {"embeddings": table}, np.array([[2, 0], [1, 1]])).output
    np.testing.assert_array_equal(out, [[[2.0, 2.1], [0.0, 0.1]], [[1.0, 1.1], [1.0, 1.1]]])
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        run(layer, {"embeddings": table}, np.array([[3]]))


# --- recurrent ----------------------------------------------------------------------


def test_simple_rnn_two_steps_by_hand():
    layer = make("simple_rnn", units=1, return_sequences=True)
    params = {"kernel": np.array([[0.5]]), "recurrent_kernel": np.array([[-2.0]]), "bias": np.array([0.1])}
    out = run(layer, params, np.array([[[1.0], [3.0]]])).output
    h1 = math.tanh(0.5 + 0.1)
    h2 = math.tanh(1.5 - 2.0 * h1 + 0.1)
    np.testing.assert_allclose(out[0, :, 0], [h1, h2], rtol=1e-15)
    assert run(layer, params, np.array([[[1.0], [3.0]]])).pre_activation is None


def test_lstm_two_steps_by_hand():
    # one unit, one feature: gate blocks i, f, g, o are single columns
    w = [0.5, -0.3, 0.8, 0.2]
    u = [0.1, 0.4, -0.6, 0.3]
    b = [0.05, 1.0, -0.1, 0.2]
    layer = make("lstm", units=1, return_sequences=True)
    params = {"kernel": np.array([w]), "recurrent_kernel": np.array([u]), "bias": np.array(b)}
    xs = [0.7, -1.2]
    out = run(layer, params, np.array([[[xs[0]], [xs[1]]]])).output
    h = c = 0.0
    expected = []
    for x in xs:
        i, f, g, o = (w[k] * x + u[k] * h + b[k] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * math.tanh(g)
        h = sigmoid(o) * math.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(out[0, :, 0], expected, rtol=1e-14)
    last = run(make("lstm", units=1), params, np.array([[[xs[0]], [xs[1]]]])).output
    np.testing.assert_allclose(last, [[expected[-1]]], rtol=1e-14)


def test_gru_two_steps_by_hand():
    w = [0.5, -0.3, 0.8]  # z, r, h
    u = [0.1, 0.4, -0.6]
    b = [0.05, -0.2, 0.1]
    rb = [0.3, 0.15, -0.25]
    layer = make("gru", units=1, return_sequences=True)
    params = {
        "kernel": np.array([w]),
        "recurrent_kernel": np.array([u]),
        "bias": np.array(b),
        "recurrent_bias": np.array(rb),
    }
    xs = [0.7, -1.2]
    out = run(layer, params, np.array([[[xs[0]], [xs[1]]]])).output
    h = 0.0
    expected = []
    for x in xs:
        z = sigmoid(w[0] * x + b[0] + u[0] * h + rb[0])
        r = sigmoid(w[1] * x + b[1] + u[1] * h + rb[1])
        n = math.tanh(w[2] * x + b[2] + r * (u[2] * h + rb[2]))
        h = z * h + (1.0 - z) * n
        expected.append(h)
    np.testing.assert_allclose(out[0, :, 0], expected, rtol=1e-14)


def test_recurrent_gate_blocks_are_per_unit_columns():
    # two units: unit 1's blocks are columns 1, 3, 5, 7 of an LSTM kernel; zeroing them leaves unit 0 alone
    rng = np.random.default_rng(2)
    params = {
        "kernel": rng.normal(size=(3, 8)),
        "recurrent_kernel": rng.normal(size=(2, 8)),
        "bias": rng.normal(size=8),
    }
    x = rng.normal(size=(2, 4, 3))
    out = run(make("lstm", units=2), params, x).output
    h = np.zeros((2, 2))
    c = np.zeros((2, 2))
    for t in range(4):
        gates = x[:, t] @ params["kernel"] + h @ params["recurrent_kernel"] + params["bias"]
        i, f, g, o = gates[:, 0:2], gates[:, 2:4], gates[:, 4:6], gates[:, 6:8]
        c = 1 / (1 + np.exp(-f)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
        h = 1 / (1 + np.exp(-o)) * np.tanh(c)
    np.testing.assert_allclose(out, h, rtol=1e-13)


def test_recurrent_without_bias():
    layer = make("gru", units=1, use_bias=False)
    params = {"kernel": np.array([[0.0, 0.0, 1.0]]), "recurrent_kernel": np.zeros((1, 3))}
    out = run(layer, params, np.array([[[0.5]]])).output
    np.testing.assert_allclose(out, [[0.5 * math.tanh(0.5)]], rtol=1e-15)  # z = sigmoid(0) = 1/2


# A cumulative-sum RNN (relu, positive inputs) forwards; backwards h = relu(2 x + 0.5 h).
BIDIRECTIONAL_PARAMS = {
    "forward.kernel": np.array([[1.0]]),
    "forward.recurrent_kernel": np.array([[1.0]]),
    "forward.bias": np.zeros(1),
    "backward.kernel": np.array([[2.0]]),
    "backward.recurrent_kernel": np.array([[0.5]]),
    "backward.bias": np.zeros(1),
}
SEQUENCE = np.array([[[1.0], [2.0], [3.0]]])
# forward reads 1, 2, 3: states 1, 3, 6; backward reads 3, 2, 1: states 6, 7, 5.5


def bidirectional(return_sequences, merge_mode="concat"):
    inner = {"type": "simple_rnn", "units": 1, "activation": "relu", "return_sequences": return_sequences}
    layer = make("bidirectional", layer=inner, merge_mode=merge_mode)
    return run(layer, BIDIRECTIONAL_PARAMS, SEQUENCE).output


def test_bidirectional_sequences_line_up_in_time():
    np.testing.assert_array_equal(bidirectional(True), [[[1.0, 5.5], [3.0, 7.0], [6.0, 6.0]]])


def test_bidirectional_last_state_is_after_reading_step_0():
    np.testing.assert_array_equal(bidirectional(False), [[6.0, 5.5]])


@pytest.mark.parametrize(
    "merge_mode, expected",
    [
        ("sum", [[11.5]]),
        ("mul", [[33.0]]),
        ("ave", [[5.75]]),
    ],
)
def test_bidirectional_merges(merge_mode, expected):
    np.testing.assert_array_equal(bidirectional(False, merge_mode), expected)


# --- merges -------------------------------------------------------------------------


def test_add_multiply_concatenate():
    a = np.arange(6.0).reshape(1, 2, 3)
    b = np.full((1, 2, 3), 2.0)
    c = np.ones((1, 2, 3))
    np.testing.assert_array_equal(run(make("add"), {}, a, b, c).output, a + 3.0)
    np.testing.assert_array_equal(run(make("multiply"), {}, a, b, b).output, a * 4.0)
    first = run(make("concatenate", axis=0), {}, a, b).output  # axis 0 of each sample
    assert first.shape == (1, 4, 3)
    np.testing.assert_array_equal(first[0, 2:], b[0])
    last = run(make("concatenate"), {}, a, b).output
    assert last.shape == (1, 2, 6)
    np.testing.assert_array_equal(last[0, 1], [3, 4, 5, 2, 2, 2])


# --- the forward pass ---------------------------------------------------------------


def load(path):
    return load_with_graph(path)[1]  # blocks expanded, as archspec loads a spec


def sample_inputs(graph, batch, seed=0):
    """Floats in [0, 1), or ids an input's embedding accepts (0, the padding id, included)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, model_input in graph.spec.inputs.items():
        shape = (batch, *model_input.shape)
        if model_input.dtype == "float":
            arrays[name] = rng.random(shape)
        else:
            embedding = next(node for node in graph.nodes if node.type == "embedding" and name in node.inputs)
            arrays[name] = rng.integers(0, embedding.layer.input_dim, shape)
    return arrays


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("training", [False, True])
def test_every_config_runs_with_graph_shapes(path, training):
    graph = load(path)
    weights = canonical_weights(graph)
    result = reference_forward(graph, weights, sample_inputs(graph, 5), training=training, step=3)
    for node in graph.nodes:
        assert result.tensors[node.id].shape == (5, *node.output_shape), node.id
        assert result.tensors[node.id].dtype == np.float64
        if node.activation is not None and node.type != "simple_rnn":
            assert f"{node.id}:pre" in result.tensors
    for name in graph.outputs:
        assert result.outputs[name].shape == (5, *graph.output_shape(name))
        if graph.node_by_id[name].activation == "softmax":
            np.testing.assert_allclose(result.outputs[name].sum(axis=-1), 1.0, rtol=1e-14)
    head = graph.heads[0]
    assert result.logits is result.tensors[head.logits]
    assert set(result.updated_weights) == set(weights)


def test_training_forward_updates_batch_norm_and_uses_dropout_counters():
    graph = load(next(p for p in CONFIGS if p.stem == "mnist_residual"))
    weights = canonical_weights(graph)
    x = sample_inputs(graph, 8)
    result = reference_forward(graph, weights, x, training=True, step=5)
    dense = result.tensors["block_dense"]
    np.testing.assert_allclose(result.updated_weights["block_norm.moving_mean"], 0.01 * dense.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(
        result.updated_weights["block_norm.moving_variance"], 0.99 + 0.01 * dense.var(axis=0), rtol=1e-14
    )
    drop = graph.node_by_id["block_drop"]
    keep = dropout_keep_mask(graph.spec.training.seed, drop.index, 5, (8, 128), 0.1)
    np.testing.assert_array_equal(result.tensors["block_drop"], np.where(keep, result.tensors["block_norm"] / 0.9, 0.0))
    inference = reference_forward(graph, weights, x)
    for name, value in weights.items():
        np.testing.assert_array_equal(inference.updated_weights[name], value)
    np.testing.assert_array_equal(inference.tensors["block_drop"], inference.tensors["block_norm"])


def test_graph_with_two_inputs_and_two_outputs():
    spec = Spec.model_validate(
        {
            "name": "two-heads",
            "inputs": {"a": {"shape": [3]}, "ids": {"shape": [2], "dtype": "int64"}},
            "layers": [
                {"id": "embed", "type": "embedding", "input_dim": 4, "output_dim": 3, "inputs": ["ids"]},
                {"id": "pooled", "type": "flatten", "inputs": ["embed"]},
                {"id": "project", "type": "dense", "units": 6, "inputs": ["a"]},
                {"id": "joined", "type": "concatenate", "inputs": ["pooled", "project"]},
                {"id": "sum", "type": "add", "inputs": ["pooled", "project"]},
                {"id": "prob", "type": "dense", "units": 2, "activation": "softmax", "inputs": ["joined"]},
            ],
            "outputs": ["prob", "sum"],
        }
    )
    graph = resolve(spec)
    weights = canonical_weights(graph, seed=3)
    a = np.array([[1.0, 2.0, 3.0]])
    ids = np.array([[3, 1]])
    result = reference_forward(graph, weights, {"a": a, "ids": ids})
    pooled = weights["embed.embeddings"][[3, 1]].reshape(1, 6)
    project = a @ weights["project.kernel"] + weights["project.bias"]
    np.testing.assert_allclose(result.outputs["sum"], pooled + project, rtol=1e-15)
    logits = np.concatenate([pooled, project], axis=1) @ weights["prob.kernel"] + weights["prob.bias"]
    np.testing.assert_allclose(result.tensors["prob:pre"], logits, rtol=1e-14)
    # without a training loss the head reads the output itself
    assert graph.heads[0].logits == "prob"
    assert result.logits is result.outputs["prob"]


def test_forward_refuses_wrong_inputs_and_weights():
    graph = load(next(p for p in CONFIGS if p.stem == "mnist_mlp"))
    weights = canonical_weights(graph)
    with pytest.raises(DataError, match=r"\[batch, 784\]"):
        reference_forward(graph, weights, np.zeros((2, 28, 28)))
    with pytest.raises(UsageError, match="missing: \\['logits.bias'\\]"):
        reference_forward(graph, {k: v for k, v in weights.items() if k != "logits.bias"}, np.zeros((2, 784)))
    with pytest.raises(UsageError, match="shape"):
        reference_forward(graph, {**weights, "logits.bias": np.zeros(9)}, np.zeros((2, 784)))
    with pytest.raises(UsageError, match="image"):
        reference_forward(graph, weights, {"pixels": np.zeros((2, 784))})


# --- sequences ------------------------------------------------------------------------


def sequence(values):
    """A (1, steps, 1) batch from a list."""
    return np.asarray(values, dtype=np.float64)[None, :, None]


@pytest.mark.parametrize("dilation", [1, 2])
def test_causal_conv1d_reads_only_the_past_by_hand(dilation):
    layer = make("conv1d", filters=1, kernel_size=2, dilation_rate=dilation, padding="causal", use_bias=False)
    kernel = np.array([10.0, 1.0]).reshape(2, 1, 1)  # y[t] = 10 * x[t - dilation] + x[t]
    out = run(layer, {"kernel": kernel}, sequence([1.0, 2.0, 3.0, 4.0])).output[0, :, 0]
    past = [0.0] * dilation + [1.0, 2.0, 3.0, 4.0][: 4 - dilation]
    np.testing.assert_array_equal(out, 10.0 * np.array(past) + [1.0, 2.0, 3.0, 4.0])


def test_same_conv1d_with_stride_pads_the_extra_step_after():
    # 5 steps, kernel 2, stride 2: total = (3 - 1) * 2 + 2 - 5 = 1 -> 0 before, 1 after.
    assert padding_amounts(5, 2, 2, 1, "same") == (0, 1)
    assert padding_amounts(5, 3, 1, 2, "causal") == (4, 0)
    layer = make("conv1d", filters=1, kernel_size=2, strides=2, padding="same", use_bias=False)
    out = run(layer, {"kernel": np.array([1.0, 10.0]).reshape(2, 1, 1)}, sequence([1, 2, 3, 4, 5])).output
    np.testing.assert_array_equal(out[0, :, 0], [1 + 20, 3 + 40, 5 + 0])


def test_1d_pools_and_global_pools_by_hand():
    x = sequence([1.0, 5.0, 2.0, 4.0, 3.0])
    avg = make("avgpool1d", pool_size=2, padding="same")  # windows [1, 5], [2, 4], [3, pad]
    np.testing.assert_array_equal(run(avg, {}, x).output[0, :, 0], [3.0, 3.0, 3.0])
    top = make("maxpool1d", pool_size=3, strides=2, padding="same")  # [pad, 1, 5], [5, 2, 4], [4, 3, pad]
    np.testing.assert_array_equal(run(top, {}, x).output[0, :, 0], [5.0, 5.0, 4.0])
    assert run(make("global_avgpool1d"), {}, x).output.tolist() == [[3.0]]
    assert run(make("global_maxpool1d"), {}, x).output.tolist() == [[5.0]]
    assert run(make("global_maxpool2d"), {}, image(GRID)).output.tolist() == [[15.0]]


def one_head(causal=False, dropout=0.0):
    """Attention with one head of one feature whose projections are the identity."""
    layer = make("multi_head_attention", num_heads=1, key_dim=1, causal=causal, dropout=dropout, use_bias=False)
    one = np.ones((1, 1))
    return layer, {f"{name}_kernel": one for name in ("query", "key", "value", "output")}


def test_attention_is_a_softmax_weighted_mean_of_the_values_by_hand():
    x = [0.5, -1.0, 2.0]
    layer, params = one_head()
    out = run(layer, params, sequence(x)).output[0, :, 0]
    for i, xi in enumerate(x):
        weights = np.exp([xi * xj for xj in x])
        assert out[i] == pytest.approx(float(weights @ x / weights.sum()), rel=1e-15)


def test_causal_attention_reads_only_earlier_steps():
    x = [0.5, -1.0, 2.0]
    layer, params = one_head(causal=True)
    out = run(layer, params, sequence(x)).output[0, :, 0]
    assert out[0] == 0.5  # step 0 sees only itself
    weights = np.exp([-1.0 * 0.5, 1.0])
    assert out[1] == pytest.approx(float(weights @ [0.5, -1.0] / weights.sum()), rel=1e-15)


def test_attention_dropout_drops_the_weights_of_the_neutral_stream():
    x = sequence([0.5, -1.0, 2.0, 0.1])
    layer, params = one_head(dropout=0.5)
    context = LayerContext(seed=3, layer_index=2, step=7)
    assert np.array_equal(run(layer, params, x, context=context).output, run(one_head()[0], params, x).output)
    dropped = run(layer, params, x, training=True, context=context).output[0, :, 0]
    keep = dropout_keep_mask(3, 2, 7, (1, 1, 4, 4), 0.5)[0, 0]  # (heads, query, key) of sample 0
    scores = np.outer(x[0, :, 0], x[0, :, 0])
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    expected = np.where(keep, weights / 0.5, 0.0) @ x[0, :, 0]
    assert 0 < keep.sum() < keep.size
    np.testing.assert_allclose(dropped, expected, rtol=1e-15)


def test_sinusoidal_positions_by_hand():
    from archspec.definitions.positions import sinusoidal_table

    layer = make("position_embedding", kind="sinusoidal", max_length=8)
    table = run(layer, {}, np.zeros((1, 3, 4))).output[0]
    np.testing.assert_array_equal(table[0], [0.0, 1.0, 0.0, 1.0])  # sin 0, cos 0
    np.testing.assert_allclose(table[2], [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)], rtol=1e-15)
    # The core's table (what the backends add) is the same formula, written once more.
    np.testing.assert_allclose(sinusoidal_table(3, 4), table, rtol=1e-15, atol=1e-300)


def test_learned_positions_add_the_first_rows_of_the_table():
    layer = make("position_embedding", max_length=5)
    table = np.arange(10.0).reshape(5, 2)
    out = run(layer, {"embeddings": table}, np.ones((2, 3, 2))).output
    np.testing.assert_array_equal(out, np.broadcast_to(table[:3] + 1.0, (2, 3, 2)))


def test_zero_padding_by_hand():
    padded = run(make("zero_padding1d", padding=[2, 1]), {}, sequence([1.0, 2.0])).output
    np.testing.assert_array_equal(padded[0, :, 0], [0.0, 0.0, 1.0, 2.0, 0.0])
    grid = run(make("zero_padding2d", padding=[[0, 1], [2, 0]]), {}, image(GRID)).output[0, :, :, 0]
    assert grid.shape == (5, 6)
    np.testing.assert_array_equal(grid[:4, 2:], GRID)
    assert not grid[4].any() and not grid[:, :2].any()


@pytest.mark.parametrize("padding", [[1, 2, 3], [[1, 2], 3], [[1], [2, 3]], -1])
def test_zero_padding_refuses_a_malformed_amount(padding):
    with pytest.raises(ValidationError):
        make("zero_padding2d", padding=padding)
