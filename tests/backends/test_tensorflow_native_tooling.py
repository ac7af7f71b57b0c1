"""The TensorFlow model and engine are real Keras and TensorFlow objects: a keras.Model that
saves to .keras files and trains with ``fit``, one traced step, XLA."""

import keras
import numpy as np
import pytest
from paths import CONFIGS

import archspec
from archspec.api import graph_of
from archspec.backends.tensorflow import Engine

CONFIGS_BY_NAME = {path.name: path for path in sorted(CONFIGS.glob("*.yaml"))}

IMAGES = """
name: tf-images
inputs:
  img: {shape: [7, 6, 3]}
layers:
  - {id: c1, type: conv2d, filters: 4, kernel_size: [3, 2], strides: [2, 1], padding: same, activation: gelu}
  - {id: c2, type: conv2d, filters: 3, kernel_size: 3, dilation_rate: 2, padding: same, activation: leaky_relu, inputs: [img]}
  - {id: mp, type: maxpool2d, pool_size: 2, padding: same, inputs: [c1]}
  - {id: bn, type: batch_norm, momentum: 0.9, epsilon: 0.01, inputs: [c2]}
  - {id: gap, type: global_avgpool2d}
  - {id: flat, type: flatten, inputs: [mp]}
  - {id: ln, type: layer_norm, epsilon: 0.00001}
  - {id: d1, type: dense, units: 3, activation: elu}
  - {id: cat, type: concatenate, inputs: [gap, d1]}
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
  - {id: b1, type: bidirectional, layer: {type: gru, units: 2, return_sequences: true}}
  - {id: fl, type: flatten}
  - {id: out, type: dense, units: 1, activation: sigmoid}
training: {loss: binary_crossentropy, seed: 5}
"""

NET = """
name: tf-engine
inputs:
  x: {shape: [3, 4]}
layers:
  - {id: g, type: gru, units: 3, return_sequences: true, kernel_regularizer: {l1: 0.01, l2: 0.02}}
  - {id: flat, type: flatten}
  - {id: hidden, type: dense, units: 5, activation: relu, bias_regularizer: {l2: 0.1}}
  - {id: bn, type: batch_norm, momentum: 0.8}
  - {id: drop, type: dropout, rate: 0.3}
  - {id: out, type: dense, units: UNITS, activation: ACTIVATION}
training:
  loss: LOSS
  optimizer: {type: adam}
  seed: 4
  dtype: float64
"""


def compiled(source, dtype="float64"):
    return archspec.compile(source, backend="tensorflow", dtype=dtype)


def random_inputs(graph, batch=4, seed=1):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(batch, *spec.shape)) for name, spec in graph.spec.inputs.items()}


def net(loss="sparse_categorical_crossentropy"):
    units, activation = {"sparse_categorical_crossentropy": (3, "softmax"), "binary_crossentropy": (1, "sigmoid")}[loss]
    model = compiled(NET.replace("UNITS", str(units)).replace("ACTIVATION", activation).replace("LOSS", loss))
    rng = np.random.default_rng(0)
    model.set_weights(
        {
            name: rng.uniform(0.5, 1.5, p.shape) if name.endswith("variance") else rng.normal(0, 0.4, p.shape)
            for name, p in model.graph.parameters.items()
        }
    )
    return model


def data(loss, count=10, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3, 4))
    if loss == "sparse_categorical_crossentropy":
        return x, rng.integers(0, 3, count)
    return x, rng.integers(0, 2, (count, 1)).astype(np.float64)


def engine_for(model, x, y, **options):
    return Engine(model, x={"x": x}, y=y, training=model.spec.training, **options)


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
    model = compiled(graph_of(CONFIGS_BY_NAME["keras_example.yaml"]).spec, dtype="float32")
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


def test_step_never_retraces_and_losses_come_back_at_once():
    model = net()
    x, y = data("sparse_categorical_crossentropy", count=11)
    engine = engine_for(model, x, y)
    order = np.random.default_rng(0).permutation(11)
    losses = [engine.train_step(order[i : i + 4], step, 0.01 * (step + 1)) for step, i in enumerate(range(0, 11, 4))]
    assert engine._step.experimental_get_tracing_count() == 1
    values = engine.losses_to_numpy(losses)
    assert values.dtype == np.float64 and values.shape == (3,) and np.all(np.isfinite(values))
    assert engine.losses_to_numpy([]).shape == (0,)


def test_xla_compiled_step_equals_the_plain_one():
    x, y = data("binary_crossentropy")
    plain, compiled = net("binary_crossentropy"), net("binary_crossentropy")
    plain_loss = engine_for(plain, x, y).train_step(np.arange(6), 3, 0.01)
    compiled_loss = engine_for(compiled, x, y, compiled=True).train_step(np.arange(6), 3, 0.01)
    assert float(compiled_loss) == pytest.approx(float(plain_loss), rel=1e-12)
    for name, value in plain.get_weights().items():
        np.testing.assert_allclose(compiled.get_weights()[name], value, rtol=1e-11, atol=1e-13, err_msg=name)


ATTENTION_DROPOUT = """
name: attention-dropout
inputs: {x: {shape: [5, 4]}}
layers:
  - {id: att, type: multi_head_attention, num_heads: 2, key_dim: 3, dropout: 0.5, causal: true}
training: {loss: mse, seed: 2}
"""


def test_attention_dropout_alone_advances_the_step_of_the_native_model():
    model, reference = compiled(ATTENTION_DROPOUT), compiled(ATTENTION_DROPOUT)
    x = np.random.default_rng(0).random((4, 5, 4))
    outputs = [model.native(x, training=True).numpy() for _ in range(3)]
    assert not np.array_equal(outputs[0], outputs[1])
    for step, output in enumerate(outputs):
        np.testing.assert_allclose(output, reference.forward(x, training=True, step=step)["att"], rtol=1e-12)
    assert int(model.step.numpy()) == 3
