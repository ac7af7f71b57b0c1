"""Whole models of every backend: the numpy reference, shapes, counts, weights, gradients, predict, errors."""

import numpy as np
import pytest
from paths import CONFIGS as CONFIG_DIR

import archspec
from archspec.api import graph_of
from archspec.errors import BackendUnavailableError, DataError, UsageError
from archspec.initializers import canonical_weights
from archspec.reference.forward import reference_forward

CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))

IMAGE_CHAIN = """
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

SEQUENCE_CHAIN = """
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

TOKEN_STACK = """
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

IMAGE_BRANCHES = """
name: tf-images
inputs:
  img: {shape: [7, 6, 3]}
layers:
  - {id: c1, type: conv2d, filters: 4, kernel_size: [3, 2], strides: [2, 1], padding: same, activation: gelu}
  - {id: c2, type: conv2d, filters: 3, kernel_size: 3, dilation_rate: 2, padding: same, activation: leaky_relu, inputs: [img]}
  - {id: mp, type: maxpool2d, pool_size: 2, padding: same, inputs: [c1]}
  - {id: ap, type: avgpool2d, pool_size: [3, 2], strides: 2, padding: same, inputs: [c2]}
  - {id: bn, type: batch_norm, momentum: 0.9, epsilon: 0.01}
  - {id: c3, type: conv2d, filters: 2, kernel_size: 2, use_bias: false, activation: relu, inputs: [c2]}
  - {id: mpv, type: maxpool2d, pool_size: [2, 3], strides: 1}
  - {id: apv, type: avgpool2d, pool_size: 2}
  - {id: gap, type: global_avgpool2d, inputs: [bn]}
  - {id: flat, type: flatten, inputs: [mp]}
  - {id: flat2, type: flatten, inputs: [apv]}
  - {id: ln, type: layer_norm, epsilon: 0.00001, inputs: [flat]}
  - {id: d1, type: dense, units: 3, activation: elu}
  - {id: sum, type: add, inputs: [d1, gap]}
  - {id: prod, type: multiply, inputs: [sum, gap, d1]}
  - {id: cat, type: concatenate, inputs: [prod, d1, flat2]}
  - {id: drop, type: dropout, rate: 0.4}
  - {id: out, type: dense, units: 4, activation: softmax}
training: {loss: sparse_categorical_crossentropy, seed: 11}
"""

SEQUENCE_BRANCHES = """
name: tf-sequences
inputs:
  seq: {shape: [5, 4]}
layers:
  - {id: r1, type: simple_rnn, units: 3, activation: relu, return_sequences: true}
  - {id: l1, type: lstm, units: 3, return_sequences: true, inputs: [seq]}
  - {id: b1, type: bidirectional, layer: {type: gru, units: 2, return_sequences: true}, inputs: [r1]}
  - {id: b2, type: bidirectional, merge_mode: ave, layer: {type: lstm, units: 2}, inputs: [l1]}
  - {id: b3, type: bidirectional, merge_mode: mul, layer: {type: simple_rnn, units: 2}, inputs: [seq]}
  - {id: b4, type: bidirectional, merge_mode: sum, layer: {type: gru, units: 2, use_bias: false}, inputs: [b1]}
  - {id: g1, type: gru, units: 3, inputs: [b1]}
  - {id: l2, type: lstm, units: 2, use_bias: false, inputs: [seq]}
  - {id: rs, type: reshape, target_shape: [-1, 2], inputs: [b1]}
  - {id: dd, type: dense, units: 2, activation: silu}
  - {id: fl, type: flatten}
  - {id: ln, type: layer_norm, center: false, inputs: [b1]}
  - {id: fl2, type: flatten}
  - {id: cat, type: concatenate, inputs: [b2, b3, b4, g1, l2, fl, fl2]}
  - {id: drop, type: dropout, rate: 0.3}
  - {id: out, type: dense, units: 1, activation: sigmoid}
training: {loss: binary_crossentropy, seed: 5}
"""

TOKEN_CONCAT = """
name: tf-tokens
inputs:
  ids: {shape: [6], dtype: int64}
  extra: {shape: [6, 2]}
layers:
  - {id: emb, type: embedding, input_dim: 10, output_dim: 3, inputs: [ids]}
  - {id: joined, type: concatenate, inputs: [emb, extra]}
  - {id: stacked, type: concatenate, axis: 0, inputs: [joined, joined]}
  - {id: norm, type: batch_norm, scale: false}
  - {id: act, type: activation, activation: tanh}
  - {id: lstm, type: lstm, units: 3}
  - {id: out, type: dense, units: 2, use_bias: false}
outputs: [out, norm]
"""

ZOOS = {
    "image_chain": IMAGE_CHAIN,
    "sequence_chain": SEQUENCE_CHAIN,
    "token_stack": TOKEN_STACK,
    "image_branches": IMAGE_BRANCHES,
    "sequence_branches": SEQUENCE_BRANCHES,
    "token_concat": TOKEN_CONCAT,
}


def random_inputs(graph, batch=4, seed=1):
    """Normal floats; integer ids in [0, 10) (every zoo's embedding has at least 10 rows)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, model_input in graph.spec.inputs.items():
        shape = (batch, *model_input.shape)
        arrays[name] = rng.normal(size=shape) if model_input.dtype == "float" else rng.integers(0, 10, size=shape)
    return arrays


def random_weights(graph, seed=0):
    """Every parameter random (biases and moving statistics too), so layout mistakes show;
    matrices scaled by their fan-in, so deep recurrences stay well-conditioned."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, param in graph.parameters.items():
        if name.endswith("moving_variance"):
            weights[name] = rng.uniform(0.5, 1.5, param.shape)
        else:
            fan_in = int(np.prod(param.shape[:-1])) if len(param.shape) > 1 else 1
            weights[name] = rng.normal(0.0, 0.5 / np.sqrt(fan_in), param.shape)
    return weights


def randomized(model, seed=2):
    """Non-trivial weights near the initial ones (biases and statistics away from their 0/1 starts)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, value in model.get_weights().items():
        noise = rng.normal(size=value.shape) * 0.3
        weights[name] = np.abs(value + noise) + 0.5 if name.endswith("moving_variance") else value + noise
    model.set_weights(weights)
    return weights


# --- every zoo and every config against the reference ---------------------------------


@pytest.mark.parametrize("zoo", ZOOS)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("weighting", ["near_initial", "random"])
def test_float64_forward_equals_the_numpy_reference(backend, zoo, training, weighting):
    model = backend.compile(ZOOS[zoo])
    graph = model.graph
    if weighting == "random":
        weights = random_weights(graph)
        model.set_weights(weights)
    else:
        weights = randomized(model)
    x = random_inputs(graph, batch=5)
    expected = reference_forward(graph, weights, x, training=training, step=5)
    ours = model.forward(x, training=training, step=5)
    assert set(ours) == {*graph.outputs, graph.heads[0].logits}
    for name in graph.outputs:
        np.testing.assert_allclose(ours[name], expected.outputs[name], rtol=1e-12, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(ours[graph.heads[0].logits], expected.logits, rtol=1e-12, atol=1e-13)
    after = model.get_weights()
    for name, value in expected.updated_weights.items():  # moving statistics move only in training
        np.testing.assert_allclose(after[name], value, rtol=1e-13, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_configs_match_graph_shapes_counts_weights_and_the_reference(backend, config):
    model = backend.compile(config)
    graph = model.graph
    assert backend.native_param_counts(model) == [graph.param_count] * len(backend.native_param_counts(model))
    x = random_inputs(graph, batch=3)
    shapes = backend.node_output_shapes(model, x)
    for node in graph.nodes:
        assert shapes[node.id] == node.output_shape, node.id

    initial = canonical_weights(graph, dtype="float64")
    weights = model.get_weights()
    assert list(weights) == list(graph.parameters)
    for name, value in weights.items():
        assert value.dtype == np.float64 and np.array_equal(value, initial[name]), name
    expected = reference_forward(graph, weights, x, training=True, step=2)
    ours = model.forward(x, training=True, step=2)
    for head in graph.heads:  # every output and every head's logits (mnist_two_heads has two)
        np.testing.assert_allclose(ours[head.logits], expected.tensors[head.logits], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(ours[head.output], expected.outputs[head.output], rtol=1e-11, atol=1e-13)

    changed = random_weights(graph)
    model.set_weights(changed)
    for name, value in model.get_weights().items():
        assert np.array_equal(value, changed[name]), name
    for training in (False, True):
        reference = reference_forward(graph, changed, x, training=training, step=2)
        result = model.forward(x, training=training, step=2)
        for head in graph.heads:
            np.testing.assert_allclose(result[head.logits], reference.tensors[head.logits], rtol=1e-12, atol=1e-12)
        model.set_weights(changed)  # undo the moving-statistics update
    predicted = model.predict(x, batch_size=2)
    expected_outputs = reference_forward(graph, changed, x).outputs
    if len(graph.outputs) == 1:
        predicted = {graph.outputs[0]: predicted}
    for output in graph.outputs:
        np.testing.assert_allclose(predicted[output], expected_outputs[output], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("zoo", ZOOS)
def test_zoo_counts_and_shapes(backend, zoo):
    model = backend.compile(ZOOS[zoo])
    assert backend.native_param_counts(model)[0] == model.graph.param_count
    shapes = backend.node_output_shapes(model, random_inputs(model.graph, batch=2))
    for node in model.graph.nodes:
        assert shapes[node.id] == node.output_shape, node.id


# --- weights and dtypes ---------------------------------------------------------------


@pytest.mark.parametrize("zoo", ZOOS)
def test_float32_weights_round_trip_exactly_and_come_back_as_copies(backend, zoo):
    model = backend.compile(ZOOS[zoo], dtype="float32")
    assert backend.native_param_counts(model)[0] == model.graph.param_count
    weights = {k: v + np.float32(0.25) for k, v in model.get_weights().items()}
    model.set_weights(weights)
    back = model.get_weights()
    assert list(back) == list(model.graph.parameters)
    for name, value in weights.items():
        assert back[name].dtype == np.float32 and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)
    first = next(iter(back))
    back[first][...] = 99.0  # returned arrays are copies, not views of the tensors
    np.testing.assert_array_equal(model.get_weights()[first], weights[first])
    assert backend.native_weight_dtypes(model) == {"float32"}
    # Only real weights: no constant zero biases, no step counter.
    assert backend.saved_state_size(model) == model.graph.param_count
    assert backend.native_trainable_size(model) == model.graph.trainable_param_count


def test_float32_initial_weights_are_the_canonical_float32_values(backend):
    model = backend.compile(CONFIGS[0], dtype="float32")
    initial = canonical_weights(model.graph, dtype="float32")
    for name, value in model.get_weights().items():
        assert value.dtype == np.float32 and np.array_equal(value, initial[name]), name


def test_float32_model_computes_in_float32(backend):
    model = backend.compile(IMAGE_BRANCHES, dtype="float32")
    assert backend.native_weight_dtypes(model) == {"float32"}
    assert model.predict(random_inputs(model.graph, batch=2)).dtype == np.float32


def test_float32_is_close_to_the_float64_reference(backend):
    model = backend.compile(SEQUENCE_CHAIN, dtype="float32")
    x = random_inputs(model.graph)
    expected = reference_forward(model.graph, model.get_weights(), x)
    np.testing.assert_allclose(model.predict(x), expected.outputs["out"], rtol=1e-5, atol=1e-6)


# --- predict --------------------------------------------------------------------------


def test_predict_batches_and_the_native_call_agree(backend):
    model = backend.compile(CONFIG_DIR / "mnist_cnn.yaml")
    x = np.random.default_rng(0).normal(size=(10, 28, 28, 1))
    whole = model.predict(x)
    np.testing.assert_allclose(model.predict(x, batch_size=3), whole, rtol=1e-14)
    np.testing.assert_allclose(backend.call_native(model, x), whole, rtol=1e-14)
    assert model.predict(x[:0]).shape == (0, 10)


@pytest.mark.parametrize(
    "zoo, shapes", [("token_stack", {"out": (4,), "norm": (12, 6)}), ("token_concat", {"out": (2,), "norm": (12, 5)})]
)
def test_several_outputs_come_back_as_a_dict_batched_consistently(backend, zoo, shapes):
    model = backend.compile(ZOOS[zoo])
    inputs = random_inputs(model.graph, batch=7)
    whole = model.predict(inputs)
    batched = model.predict(inputs, batch_size=3)
    assert set(whole) == set(shapes)
    for name, shape in shapes.items():
        assert whole[name].shape == (7, *shape) == (7, *model.graph.output_shape(name))
        np.testing.assert_allclose(batched[name], whole[name], rtol=1e-14)


# --- gradients ------------------------------------------------------------------------


def scalar(graph, weights, x, cotangents, training):
    result = reference_forward(graph, weights, x, training=training, step=1)
    tensors = result.tensors
    return sum(float(np.sum(tensors[k] * c)) for k, c in cotangents.items())


@pytest.mark.parametrize("zoo, training", [("image_chain", True), ("sequence_chain", False), ("token_stack", True)])
def test_gradients_match_finite_differences_of_the_reference(backend, zoo, training):
    model = backend.compile(ZOOS[zoo])
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


@pytest.mark.parametrize("zoo", ["image_branches", "sequence_branches", "token_concat"])
def test_gradients_match_directional_finite_differences_of_the_model(backend, zoo):
    """d/dt of sum(output * cotangent) along a random direction, central differences in float64."""
    model = backend.compile(ZOOS[zoo])
    graph = model.graph
    weights = random_weights(graph)
    model.set_weights(weights)
    rng = np.random.default_rng(3)
    inputs = random_inputs(graph, batch=3)
    keys = list(graph.outputs)
    probe = model.forward(inputs)
    cotangents = {key: rng.normal(size=probe[key].shape) for key in keys}
    param_grads, input_grads = model.gradients(inputs, cotangents)
    trainable = [name for name, p in graph.parameters.items() if p.trainable]
    assert sorted(param_grads) == sorted(trainable)
    float_inputs = [n for n, s in graph.spec.inputs.items() if s.dtype == "float"]
    assert sorted(input_grads) == sorted(float_inputs)

    directions = {name: rng.normal(size=weights[name].shape) for name in trainable}
    input_directions = {name: rng.normal(size=inputs[name].shape) for name in float_inputs}

    def objective(t):
        model.set_weights({n: w + t * directions[n] if n in directions else w for n, w in weights.items()})
        moved = {n: x + t * input_directions[n] if n in input_directions else x for n, x in inputs.items()}
        values = model.forward(moved)
        return sum(float(np.sum(values[k] * cotangents[k])) for k in keys)

    eps = 1e-6
    numeric = (objective(eps) - objective(-eps)) / (2 * eps)
    analytic = sum(float(np.sum(param_grads[n] * directions[n])) for n in trainable)
    analytic += sum(float(np.sum(input_grads[n] * input_directions[n])) for n in float_inputs)
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_gradients_of_logits_in_training_mode_equal_finite_differences(backend):
    model = backend.compile(IMAGE_BRANCHES)
    weights = random_weights(model.graph)
    model.set_weights(weights)
    inputs = random_inputs(model.graph, batch=4)
    cotangent = np.random.default_rng(4).normal(size=(4, 4))
    logits = model.graph.heads[0].logits
    grads, _ = model.gradients(inputs, {logits: cotangent}, training=True, step=5)

    def objective(kernel):
        model.set_weights({**weights, "c1.kernel": kernel})
        return float(np.sum(model.forward(inputs, training=True, step=5)[logits] * cotangent))

    eps, index = 1e-6, (1, 0, 2, 3)
    bump = np.zeros_like(weights["c1.kernel"])
    bump[index] = eps
    numeric = (objective(weights["c1.kernel"] + bump) - objective(weights["c1.kernel"] - bump)) / (2 * eps)
    assert grads["c1.kernel"][index] == pytest.approx(numeric, rel=1e-6)


# --- odd specs ------------------------------------------------------------------------


def test_layer_ids_that_are_attribute_names_still_build(backend):
    model = backend.compile(
        """
name: awkward-ids
inputs: {x: {shape: [3]}}
layers:
  - {id: train, type: dense, units: 2}
  - {id: forward, type: dense, units: 2}
  - {id: train_, type: add, inputs: [train, forward]}
"""
    )
    weights = model.get_weights()
    x = np.ones((1, 3))
    first = x @ weights["train.kernel"] + weights["train.bias"]
    expected = first + first @ weights["forward.kernel"] + weights["forward.bias"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-14)


def test_simple_rnn_activation_is_applied_once(backend):
    model = backend.compile(
        """
name: rnn
inputs: {x: {shape: [1, 1]}}
layers: [{id: r, type: simple_rnn, units: 1}]
"""
    )
    model.set_weights(
        {"r.kernel": np.array([[2.0]]), "r.recurrent_kernel": np.array([[0.0]]), "r.bias": np.array([0.0])}
    )
    np.testing.assert_allclose(model.predict(np.array([[[1.0]]])), [[np.tanh(2.0)]], rtol=1e-15)


# --- errors and devices ---------------------------------------------------------------


def test_errors_say_what_was_expected(backend):
    graph = graph_of(TOKEN_STACK)
    model = archspec.compile(TOKEN_STACK, backend=backend.name)
    x = random_inputs(graph)
    x["ids"][0, 0] = 11
    with pytest.raises(DataError, match=r"expected ids in \[0, 10\]"):
        model.predict(x)
    with pytest.raises(UsageError, match="shape"):
        model.predict({"ids": np.zeros((2, 5), int), "extra": np.zeros((2, 6, 2))})
    with pytest.raises(UsageError, match=backend.unknown_cotangent_message):
        model.gradients(random_inputs(graph), {"nope": np.zeros((4, 4))})
    with pytest.raises(UsageError, match="batch_size"):
        model.predict(random_inputs(graph), batch_size=0)
    with pytest.raises(UsageError, match="dict"):
        model.predict(np.zeros((2, 6)))


def test_devices(backend):
    assert backend.device_kind(backend.compile(TOKEN_STACK, device="cpu")) == "cpu"
    has_gpu = backend.has_gpu()
    assert backend.device_kind(backend.compile(TOKEN_STACK, device="auto")) == ("gpu" if has_gpu else "cpu")
    if not has_gpu:
        with pytest.raises(BackendUnavailableError, match=backend.no_gpu_message):
            backend.compile(TOKEN_STACK, device="cuda")
    with pytest.raises(UsageError, match="device"):
        archspec.compile(TOKEN_STACK, backend=backend.name, device="tpu")
