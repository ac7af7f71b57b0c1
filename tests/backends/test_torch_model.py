"""Whole torch models: agreement with the numpy reference, shapes, counts, weights, gradients."""

from pathlib import Path

import numpy as np
import pytest
import torch

import archspec
from archspec.api import graph_of
from archspec.errors import BackendUnavailableError, DataError, UsageError
from archspec.reference.forward import reference_forward

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))

IMAGE_ZOO = """
name: image-zoo
inputs:
  image: {shape: [9, 10, 3]}
layers:
  - {id: c1, type: conv2d, filters: 4, kernel_size: [3, 2], strides: 2, padding: same, activation: elu}
  - {id: bn, type: batch_norm, momentum: 0.9, epsilon: 0.01}
  - {id: mp, type: maxpool2d, pool_size: 3, strides: 1, padding: same}
  - {id: c2, type: conv2d, filters: 5, kernel_size: 2, dilation_rate: 2, padding: same, activation: gelu}
  - {id: ap, type: avgpool2d, pool_size: [2, 3], strides: [1, 2], padding: same}
  - {id: c3, type: conv2d, filters: 3, kernel_size: 2, activation: leaky_relu}
  - {id: mpv, type: maxpool2d, pool_size: 2, strides: 1}
  - {id: apv, type: avgpool2d, pool_size: 2, inputs: [c2]}
  - {id: gap, type: global_avgpool2d, inputs: [c2]}
  - {id: flat, type: flatten, inputs: [mpv]}
  - {id: flat2, type: flatten, inputs: [apv]}
  - {id: joined, type: concatenate, inputs: [flat, flat2, gap]}
  - {id: drop, type: dropout, rate: 0.4}
  - {id: out, type: dense, units: 3, activation: softmax}
training: {loss: sparse_categorical_crossentropy, seed: 7}
"""

SEQUENCE_ZOO = """
name: sequence-zoo
inputs:
  rows: {shape: [5, 4]}
layers:
  - {id: rnn, type: simple_rnn, units: 3, activation: relu, return_sequences: true}
  - {id: ln, type: layer_norm, epsilon: 0.001}
  - {id: lstm, type: lstm, units: 4, return_sequences: true}
  - {id: gru, type: gru, units: 3, return_sequences: true}
  - {id: bi_concat, type: bidirectional, merge_mode: concat, layer: {type: gru, units: 2, return_sequences: true}}
  - {id: bi_sum, type: bidirectional, merge_mode: sum, layer: {type: lstm, units: 3}, inputs: [bi_concat]}
  - {id: bi_mul, type: bidirectional, merge_mode: mul, layer: {type: simple_rnn, units: 3}, inputs: [gru]}
  - {id: bi_ave, type: bidirectional, merge_mode: ave, layer: {type: gru, units: 3, use_bias: false}, inputs: [lstm]}
  - {id: tanh_rnn, type: simple_rnn, units: 3, inputs: [rows]}
  - {id: plain_lstm, type: lstm, units: 3, use_bias: false, inputs: [rows]}
  - {id: product, type: multiply, inputs: [bi_sum, bi_mul, bi_ave]}
  - {id: total, type: add, inputs: [product, tanh_rnn, plain_lstm]}
  - {id: wide, type: dense, units: 6, activation: silu}
  - {id: reshaped, type: reshape, target_shape: [3, -1]}
  - {id: per_step, type: dense, units: 2, activation: tanh}
  - {id: flat, type: flatten}
  - {id: drop, type: dropout, rate: 0.25}
  - {id: out, type: dense, units: 1, activation: sigmoid}
training: {loss: binary_crossentropy, seed: 3}
"""

TOKEN_ZOO = """
name: token-zoo
inputs:
  ids: {shape: [6], dtype: int64}
  extra: {shape: [6, 2]}
layers:
  - {id: emb, type: embedding, input_dim: 11, output_dim: 4, inputs: [ids]}
  - {id: joined, type: concatenate, axis: -1, inputs: [emb, extra]}
  - {id: stacked, type: concatenate, axis: 0, inputs: [joined, joined]}
  - {id: norm, type: batch_norm, center: false}
  - {id: relu, type: activation, activation: relu}
  - {id: lstm, type: lstm, units: 3}
  - {id: out, type: dense, units: 4, use_bias: false}
outputs: [out, norm]
"""

ZOOS = {"image": IMAGE_ZOO, "sequence": SEQUENCE_ZOO, "tokens": TOKEN_ZOO}


def random_inputs(graph, batch=4, seed=1):
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, model_input in graph.spec.inputs.items():
        shape = (batch, *model_input.shape)
        arrays[name] = rng.integers(0, 11, size=shape) if model_input.dtype != "float" else rng.normal(size=shape)
    return arrays


def randomized(model, seed=2):
    """Non-trivial weights (biases and statistics away from their 0/1 starts)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, value in model.get_weights().items():
        noise = rng.normal(size=value.shape) * 0.3
        weights[name] = np.abs(value + noise) + 0.5 if name.endswith("moving_variance") else value + noise
    model.set_weights(weights)
    return weights


@pytest.mark.parametrize("zoo", ZOOS)
@pytest.mark.parametrize("training", [False, True])
def test_float64_forward_equals_the_numpy_reference(zoo, training):
    model = archspec.compile(ZOOS[zoo], backend="torch", dtype="float64")
    weights = randomized(model)
    x = random_inputs(model.graph)
    expected = reference_forward(model.graph, weights, x, training=training, step=5)
    ours = model.forward(x, training=training, step=5)
    for name in model.graph.outputs:
        np.testing.assert_allclose(ours[name], expected.outputs[name], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours[model.graph.heads[0].logits], expected.logits, rtol=1e-12, atol=1e-13)
    assert set(ours) == {*model.graph.outputs, model.graph.heads[0].logits}
    after = model.get_weights()
    for name, value in expected.updated_weights.items():  # moving statistics move only in training
        np.testing.assert_allclose(after[name], value, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_configs_match_graph_shapes_counts_and_the_reference(config):
    model = archspec.compile(config, backend="torch", dtype="float64")
    graph = model.graph
    assert model.native_param_count() == graph.param_count
    x = random_inputs(graph, batch=3)
    tensors = model.native.tensors(model.input_tensors(model._as_input_dict(x)), [n.id for n in graph.nodes])
    for node in graph.nodes:
        assert tuple(tensors[node.id].shape) == (3, *node.output_shape), node.id
    expected = reference_forward(graph, model.get_weights(), x, training=True, step=2)
    ours = model.forward(x, training=True, step=2)
    np.testing.assert_allclose(ours[graph.heads[0].logits], expected.logits, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ours[graph.outputs[0]], expected.outputs[graph.outputs[0]], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("zoo", ZOOS)
def test_native_count_round_trip_and_state_dict(zoo):
    model = archspec.compile(ZOOS[zoo], backend="torch", dtype="float32")
    assert model.native_param_count() == model.graph.param_count
    weights = {k: v + np.float32(0.25) for k, v in model.get_weights().items()}
    model.set_weights(weights)
    back = model.get_weights()
    assert list(back) == list(model.graph.parameters)
    for name, value in weights.items():
        assert back[name].dtype == np.float32 and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)
    back[next(iter(back))][...] = 99.0  # returned arrays are copies, not views of the tensors
    np.testing.assert_array_equal(model.get_weights()[next(iter(back))], weights[next(iter(back))])
    state = model.native.state_dict()  # only real weights: no constant zero biases, no step counter
    assert sum(v.numel() for v in state.values()) == model.graph.param_count
    assert all(p.dtype == torch.float32 for p in model.native.parameters())


def test_no_parameter_beyond_the_canonical_ones():
    model = archspec.compile(SEQUENCE_ZOO, backend="torch", dtype="float64")
    assert sum(p.numel() for p in model.native.parameters()) == model.graph.trainable_param_count
    assert {n for n, _ in model.native.named_buffers()} >= {"layers.lstm.bias_hh", "step"}


def test_predict_batches_and_native_call_agree():
    model = archspec.compile(CONFIGS[[p.stem for p in CONFIGS].index("mnist_cnn")], backend="torch", dtype="float64")
    x = np.random.default_rng(0).normal(size=(10, 28, 28, 1))
    whole = model.predict(x)
    np.testing.assert_allclose(model.predict(x, batch_size=3), whole, rtol=1e-14)
    with torch.no_grad():
        np.testing.assert_allclose(model.native(torch.from_numpy(x)).numpy(), whole, rtol=1e-14)
    assert model.predict(x[:0]).shape == (0, 10)


def test_several_outputs_come_back_as_a_dict():
    model = archspec.compile(TOKEN_ZOO, backend="torch")
    out = model.predict(random_inputs(model.graph, batch=2))
    assert set(out) == {"out", "norm"} and out["out"].shape == (2, 4) and out["norm"].shape == (2, 12, 6)


def test_float32_is_close_to_the_float64_reference():
    model = archspec.compile(SEQUENCE_ZOO, backend="torch", dtype="float32")
    x = random_inputs(model.graph)
    expected = reference_forward(model.graph, model.get_weights(), x)
    np.testing.assert_allclose(model.predict(x), expected.outputs["out"], rtol=1e-5, atol=1e-6)


def scalar(graph, weights, x, cotangents, training):
    result = reference_forward(graph, weights, x, training=training, step=1)
    tensors = result.tensors
    return sum(float(np.sum(tensors[k] * c)) for k, c in cotangents.items())


@pytest.mark.parametrize("zoo, training", [("image", True), ("sequence", False), ("tokens", True)])
def test_gradients_match_finite_differences_of_the_reference(zoo, training):
    model = archspec.compile(ZOOS[zoo], backend="torch", dtype="float64")
    graph = model.graph
    weights = randomized(model)
    x = random_inputs(graph, batch=3)
    rng = np.random.default_rng(3)
    cotangents = {graph.heads[0].logits: rng.normal(size=(3, *graph.output_shape(graph.outputs[0])))}
    param_grads, input_grads = model.gradients(x, cotangents, training=training, step=1)
    trainable = {name for name, p in graph.parameters.items() if p.trainable}
    assert set(param_grads) == trainable
    assert set(input_grads) == {n for n, i in graph.spec.inputs.items() if i.dtype == "float"}
    h = 1e-6
    for name in sorted(trainable)[::3]:
        index = tuple(rng.integers(0, s) for s in weights[name].shape)
        up, down = dict(weights), dict(weights)
        up[name], down[name] = weights[name].copy(), weights[name].copy()
        up[name][index] += h
        down[name][index] -= h
        numeric = (scalar(graph, up, x, cotangents, training) - scalar(graph, down, x, cotangents, training)) / (2 * h)
        assert param_grads[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), name
    name = next(iter(input_grads))
    index = (0,) * x[name].ndim
    up, down = dict(x), dict(x)
    up[name], down[name] = x[name].copy(), x[name].copy()
    up[name][index] += h
    down[name][index] -= h
    numeric = (
        scalar(graph, weights, up, cotangents, training) - scalar(graph, weights, down, cotangents, training)
    ) / (2 * h)
    assert input_grads[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_dense_gradients_are_exact():
    model = archspec.compile(
        """
name: affine
inputs: {x: {shape: [3]}}
layers: [{id: d, type: dense, units: 2, activation: tanh}]
""",
        backend="torch",
        dtype="float64",
    )
    x = np.random.default_rng(0).normal(size=(5, 3))
    cotangent = np.random.default_rng(1).normal(size=(5, 2))
    params, inputs = model.gradients(x, {"d:pre": cotangent})
    kernel = model.get_weights()["d.kernel"]
    np.testing.assert_allclose(params["d.kernel"], x.T @ cotangent, rtol=1e-14)
    np.testing.assert_allclose(params["d.bias"], cotangent.sum(0), rtol=1e-14)
    np.testing.assert_allclose(inputs["x"], cotangent @ kernel.T, rtol=1e-14)


def test_layer_ids_that_are_module_attributes_still_build():
    model = archspec.compile(
        """
name: awkward-ids
inputs: {x: {shape: [3]}}
layers:
  - {id: train, type: dense, units: 2}
  - {id: forward, type: dense, units: 2}
  - {id: train_, type: add, inputs: [train, forward]}
""",
        backend="torch",
        dtype="float64",
    )
    weights = model.get_weights()
    x = np.ones((1, 3))
    first = x @ weights["train.kernel"] + weights["train.bias"]
    expected = first + first @ weights["forward.kernel"] + weights["forward.bias"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-14)


def test_simple_rnn_activation_is_applied_once():
    model = archspec.compile(
        """
name: rnn
inputs: {x: {shape: [1, 1]}}
layers: [{id: r, type: simple_rnn, units: 1}]
""",
        backend="torch",
        dtype="float64",
    )
    model.set_weights(
        {"r.kernel": np.array([[2.0]]), "r.recurrent_kernel": np.array([[0.0]]), "r.bias": np.array([0.0])}
    )
    np.testing.assert_allclose(model.predict(np.array([[[1.0]]])), [[np.tanh(2.0)]], rtol=1e-15)


def test_errors_say_what_was_expected():
    graph = graph_of(TOKEN_ZOO)
    model = archspec.compile(TOKEN_ZOO, backend="torch")
    x = random_inputs(graph)
    x["ids"][0, 0] = 11
    with pytest.raises(DataError, match=r"expected ids in \[0, 10\]"):
        model.predict(x)
    with pytest.raises(UsageError, match="shape"):
        model.predict({"ids": np.zeros((2, 5), int), "extra": np.zeros((2, 6, 2))})
    with pytest.raises(UsageError, match="expected cotangents for output ids"):
        model.gradients(random_inputs(graph), {"nope": np.zeros(1)})
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
            archspec.compile(TOKEN_ZOO, backend="torch", device="cuda")
    assert archspec.compile(TOKEN_ZOO, backend="torch", device="auto").device.type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
