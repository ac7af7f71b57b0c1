"""Whole Keras models: the numpy reference, shapes, counts, weights, gradients, the native model."""

from pathlib import Path

import keras
import numpy as np
import pytest

import archspec
from archspec.api import graph_of
from archspec.errors import UsageError
from archspec.reference.forward import reference_forward

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))
CONFIGS_BY_NAME = {path.name: path for path in CONFIGS}

IMAGES = """
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

SEQUENCES = """
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

TOKENS = """
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

ZOOS = {"images": IMAGES, "sequences": SEQUENCES, "tokens": TOKENS}


def compiled(source, dtype="float64"):
    return archspec.compile(source, backend="tensorflow", dtype=dtype)


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


def random_inputs(graph, batch=4, seed=1):
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, spec in graph.spec.inputs.items():
        if spec.dtype == "float":
            inputs[name] = rng.normal(size=(batch, *spec.shape))
        else:
            inputs[name] = rng.integers(0, 10, size=(batch, *spec.shape))
    return inputs


@pytest.fixture(scope="module", params=sorted(ZOOS))
def zoo(request):
    model = compiled(ZOOS[request.param])
    model.set_weights(random_weights(model.graph))
    return model


# --- every config ------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_counts_shapes_weights_and_reference(path):
    model = compiled(path)
    graph = model.graph
    assert model.native_param_count() == graph.param_count == model.native.count_params()
    for node in graph.nodes:
        assert tuple(model.native.get_layer(node.id).output.shape[1:]) == node.output_shape, node.id

    initial = archspec.initializers.canonical_weights(graph, dtype="float64")
    weights = model.get_weights()
    assert list(weights) == list(graph.parameters)
    for name, value in weights.items():
        assert value.dtype == np.float64 and np.array_equal(value, initial[name]), name
    changed = random_weights(graph)
    model.set_weights(changed)
    for name, value in model.get_weights().items():
        assert np.array_equal(value, changed[name]), name

    inputs = random_inputs(graph, batch=3)
    for training in (False, True):
        reference = reference_forward(graph, changed, inputs, training=training, step=2)
        result = model.forward(inputs, training=training, step=2)
        np.testing.assert_allclose(result[graph.heads[0].logits], reference.logits, rtol=1e-12, atol=1e-12)
        model.set_weights(changed)  # undo the moving-statistics update
    (output,) = graph.outputs
    predicted = model.predict(inputs, batch_size=2)
    expected = reference_forward(graph, changed, inputs).outputs[output]
    np.testing.assert_allclose(predicted, expected, rtol=1e-12, atol=1e-12)


def test_float32_weights_are_the_canonical_float32_values():
    model = compiled(CONFIGS[0], dtype="float32")
    initial = archspec.initializers.canonical_weights(model.graph, dtype="float32")
    for name, value in model.get_weights().items():
        assert value.dtype == np.float32 and np.array_equal(value, initial[name]), name


# --- the layer zoos -----------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_zoo_matches_reference(zoo, training):
    graph = zoo.graph
    weights = zoo.get_weights()
    inputs = random_inputs(graph, batch=5)
    reference = reference_forward(graph, weights, inputs, training=training, step=9)
    result = zoo.forward(inputs, training=training, step=9)
    for name in graph.outputs:
        np.testing.assert_allclose(result[name], reference.outputs[name], rtol=1e-12, atol=1e-12)
    if graph.heads and graph.spec.training:
        np.testing.assert_allclose(result[graph.heads[0].logits], reference.logits, rtol=1e-12, atol=1e-12)
    updated = zoo.get_weights()
    for name, value in reference.updated_weights.items():
        np.testing.assert_allclose(updated[name], value, rtol=1e-13, atol=1e-15, err_msg=name)
    zoo.set_weights(weights)


def test_zoo_counts_and_shapes(zoo):
    assert zoo.native_param_count() == zoo.graph.param_count
    for node in zoo.graph.nodes:
        assert tuple(zoo.native.get_layer(node.id).output.shape[1:]) == node.output_shape, node.id


def test_zoo_gradients_match_finite_differences(zoo):
    """d/dt of sum(output * cotangent) along a random direction, central differences in float64."""
    graph = zoo.graph
    rng = np.random.default_rng(3)
    weights = zoo.get_weights()
    inputs = random_inputs(graph, batch=3)
    keys = list(graph.outputs)
    probe = zoo.forward(inputs)
    cotangents = {key: rng.normal(size=probe[key].shape) for key in keys}
    param_grads, input_grads = zoo.gradients(inputs, cotangents)
    trainable = [name for name, p in graph.parameters.items() if p.trainable]
    assert sorted(param_grads) == sorted(trainable)
    float_inputs = [n for n, s in graph.spec.inputs.items() if s.dtype == "float"]
    assert sorted(input_grads) == sorted(float_inputs)

    directions = {name: rng.normal(size=weights[name].shape) for name in trainable}
    input_directions = {name: rng.normal(size=inputs[name].shape) for name in float_inputs}

    def objective(t):
        zoo.set_weights({n: w + t * directions[n] if n in directions else w for n, w in weights.items()})
        moved = {n: x + t * input_directions[n] if n in input_directions else x for n, x in inputs.items()}
        values = zoo.forward(moved)
        return sum(float(np.sum(values[k] * cotangents[k])) for k in keys)

    eps = 1e-6
    numeric = (objective(eps) - objective(-eps)) / (2 * eps)
    zoo.set_weights(weights)
    analytic = sum(float(np.sum(param_grads[n] * directions[n])) for n in trainable)
    analytic += sum(float(np.sum(input_grads[n] * input_directions[n])) for n in float_inputs)
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_gradients_of_logits_in_training_mode_equal_finite_differences():
    model = compiled(IMAGES)
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


# --- the CompiledModel surface ------------------------------------------------------


def test_predict_returns_a_dict_for_several_outputs_and_batches_consistently():
    model = compiled(TOKENS)
    inputs = random_inputs(model.graph, batch=7)
    whole = model.predict(inputs)
    batched = model.predict(inputs, batch_size=3)
    assert set(whole) == {"out", "norm"}
    for name in whole:
        assert whole[name].shape == (7, *model.graph.output_shape(name))
        np.testing.assert_allclose(batched[name], whole[name], rtol=1e-14)


def test_predict_and_forward_check_their_arguments():
    model = compiled(TOKENS)
    with pytest.raises(UsageError, match="batch_size"):
        model.predict(random_inputs(model.graph), batch_size=0)
    with pytest.raises(UsageError, match="dict"):
        model.predict(np.zeros((2, 6)))
    with pytest.raises(UsageError, match="expected a key"):
        model.gradients(random_inputs(model.graph), {"nope": np.zeros((4, 2))})


def test_float32_model_computes_in_float32():
    model = compiled(IMAGES, dtype="float32")
    assert all(v.dtype == "float32" for v in model.native.weights)
    output = model.predict(random_inputs(model.graph, batch=2))
    assert output.dtype == np.float32


def test_native_model_is_a_working_keras_model(tmp_path):
    model = compiled(IMAGES)
    native = model.native
    assert isinstance(native, keras.Model)
    assert native.get_layer("c1").kernel.shape == (3, 2, 3, 4)
    inputs = random_inputs(model.graph, batch=2)["img"]
    np.testing.assert_allclose(native(inputs, training=False).numpy(), model.predict(inputs), rtol=1e-12)
    path = tmp_path / "native.keras"
    native.save(path)
    restored = keras.models.load_model(path)
    # (Calling, not restored.predict: Keras' data adapters cast float64 arrays to floatx.)
    np.testing.assert_array_equal(restored(inputs).numpy(), model.predict(inputs))


def test_native_model_fits_with_keras():
    model = compiled(graph_of(CONFIGS[0]).spec, dtype="float32")
    native = model.native
    native.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 784)).astype("float32")
    y = np.eye(10, dtype="float32")[np.arange(8)]
    before = model.get_weights()["dense_1.kernel"].copy()
    native.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.array_equal(model.get_weights()["dense_1.kernel"], before)


def test_each_training_call_of_the_native_model_draws_fresh_dropout_masks():
    """``fit`` and a user's own loop call the native model; each training call uses the
    dropout step and advances it, so call s has the masks archspec's step s has."""
    spec = CONFIGS_BY_NAME["mnist_mlp.yaml"]
    model, reference = compiled(spec), compiled(spec)
    x = np.random.default_rng(0).random((4, 784))
    outputs = [model.native(x, training=True).numpy() for _ in range(3)]
    assert not np.array_equal(outputs[0], outputs[1])
    for step, output in enumerate(outputs):
        expected = reference.forward(x, training=True, step=step)["logits"]
        np.testing.assert_allclose(output, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(model.native(x, training=False).numpy(), model.native(x).numpy())
    assert int(model.step.numpy()) == 3  # inference calls leave it alone
    model.native.compile(optimizer="sgd", loss="categorical_crossentropy")
    y = np.eye(10)[np.arange(8)]
    model.native.fit(x[np.arange(8) % 4], y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    assert int(model.step.numpy()) == 5  # one step per batch of fit


def test_layers_are_named_after_node_ids():
    model = compiled(SEQUENCES)
    names = {layer.name for layer in model.native.layers}
    assert {node.id for node in model.graph.nodes} <= names
    assert model.native.get_layer("b1").forward_layer.name == "forward_b1"
