"""The TensorFlow training engine against the numpy reference: losses, optimizer updates,
whole training steps, optimizer state, and a step that never retraces."""

import numpy as np
import pytest
import tensorflow as tf

import archspec
from archspec.backends.tensorflow import Engine
from archspec.backends.tensorflow.engine import batch_loss
from archspec.definitions.optimizers import options_from_spec, state_slots
from archspec.errors import UsageError
from archspec.reference import optimizers as reference_optimizers
from archspec.reference.forward import reference_forward
from archspec.reference.losses import loss_value, regularization_penalty

NET = """
name: tf-engine
inputs:
  x: {{shape: [3, 4]}}
layers:
  - {{id: g, type: gru, units: 3, return_sequences: true, kernel_regularizer: {{l1: 0.01, l2: 0.02}}}}
  - {{id: flat, type: flatten}}
  - {{id: hidden, type: dense, units: 5, activation: relu, bias_regularizer: {{l2: 0.1}}}}
  - {{id: bn, type: batch_norm, momentum: 0.8}}
  - {{id: drop, type: dropout, rate: 0.3}}
  - {{id: out, type: dense, units: {units}, activation: {activation}}}
training:
  loss: {loss}
  optimizer: {optimizer}
  seed: 4
  dtype: float64
"""

LOSSES = {
    "sparse_categorical_crossentropy": (3, "softmax"),
    "categorical_crossentropy": (3, "softmax"),
    "binary_crossentropy": (1, "sigmoid"),
    "mse": (2, "linear"),
    "mae": (1, "tanh"),
}

OPTIMIZERS = {
    "sgd": "{type: sgd, learning_rate: 0.1}",
    "sgd_nesterov": "{type: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01}",
    "adam": "{type: adam, weight_decay: 0.05}",
    "adamw": "{type: adamw, beta_1: 0.8, epsilon: 0.001}",
    "rmsprop": "{type: rmsprop}",
    "rmsprop_momentum": "{type: rmsprop, momentum: 0.5, rho: 0.9}",
    "adadelta": "{type: adadelta, rho: 0.95}",
}


def net(loss="sparse_categorical_crossentropy", optimizer="{type: adam}"):
    units, activation = LOSSES[loss]
    source = NET.format(loss=loss, units=units, activation=activation, optimizer=optimizer)
    model = archspec.compile(source, backend="tensorflow")
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
        y = rng.integers(0, 3, count)
    elif loss == "categorical_crossentropy":
        y = np.eye(3)[rng.integers(0, 3, count)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (count, 1)).astype(np.float64)
    else:
        y = rng.normal(size=(count, LOSSES[loss][0]))
    return x, y


def engine_for(model, x, y, **options):
    return Engine(model, x={"x": x}, y=y, training=model.spec.training, **options)


# --- losses -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("from_logits", [True, False])
def test_batch_loss_equals_reference(name, from_logits):
    rng = np.random.default_rng(2)
    columns = LOSSES[name][0]
    output = rng.uniform(0.05, 0.9, (6, columns))
    if name.endswith("categorical_crossentropy"):
        output = rng.uniform(0.05, 0.9, (6, 4))
    target = {
        "sparse_categorical_crossentropy": rng.integers(0, 4, 6),
        "categorical_crossentropy": np.eye(4)[rng.integers(0, 4, 6)],
        "binary_crossentropy": rng.integers(0, 2, (6, 1)).astype(float),
    }.get(name, rng.normal(size=output.shape))
    if from_logits:
        output = rng.normal(0, 3, output.shape)
    value = batch_loss(name, tf.constant(output), tf.constant(target), from_logits).numpy()
    assert value == pytest.approx(loss_value(name, output, target, from_logits=from_logits), rel=1e-14)


def test_binary_crossentropy_gradient_is_exact_at_zero_logit():
    z = tf.constant([[0.0], [0.0], [2.0]], tf.float64)
    y = tf.constant([[1.0], [0.0], [1.0]], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = batch_loss("binary_crossentropy", z, y, True)
    expected = (1 / (1 + np.exp(-np.array([0.0, 0.0, 2.0]))) - [1.0, 0.0, 1.0]) / 3
    np.testing.assert_allclose(tape.gradient(loss, z).numpy()[:, 0], expected, rtol=1e-14)


# --- optimizer updates --------------------------------------------------------------


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_optimizer_steps_equal_reference(optimizer):
    model = net(optimizer=OPTIMIZERS[optimizer])
    x, y = data("sparse_categorical_crossentropy")
    engine = engine_for(model, x, y)
    spec = model.spec.training.optimizer
    options = options_from_spec(spec)
    trainable = [name for name, p in model.graph.parameters.items() if p.trainable]
    params = {name: value for name, value in model.get_weights().items() if name in trainable}
    state = reference_optimizers.init_state(spec.type, options, params)
    rng = np.random.default_rng(5)
    for step, lr in enumerate([0.1, 0.03, 0.2]):
        grads = {name: rng.normal(size=value.shape) for name, value in params.items()}
        engine.optimizer_step_only(grads, lr, step)
        params, state = reference_optimizers.apply(spec.type, options, params, grads, state, step + 1, lr)
    weights = model.get_weights()
    for name, value in params.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-12, atol=1e-14, err_msg=name)
    saved = engine.optimizer_state()
    assert set(saved) == {f"{n}/{s}" for n in trainable for s in state_slots(spec.type, options)}
    for name, slots in state.items():
        for slot, value in slots.items():
            np.testing.assert_allclose(saved[f"{name}/{slot}"], value, rtol=1e-12, atol=1e-14, err_msg=f"{name}/{slot}")


# --- whole training steps -----------------------------------------------------------


def loss_gradient(name, logits, target):
    """d(mean loss)/d(logits) in numpy, for the from-logits heads the test nets have."""
    n = len(logits)
    if name.endswith("categorical_crossentropy"):
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        softmax = shifted / shifted.sum(axis=1, keepdims=True)
        onehot = np.eye(logits.shape[1])[target] if target.ndim == 1 else target
        return (softmax * onehot.sum(axis=1, keepdims=True) - onehot) / n
    target = target.reshape(logits.shape)
    if name == "binary_crossentropy":
        return (1 / (1 + np.exp(-logits)) - target) / n
    if name == "mse":
        return 2 * (logits - target) / logits.size
    return np.sign(logits - target) / logits.size


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_train_step_equals_reference(loss):
    model = net(loss=loss, optimizer=OPTIMIZERS["adamw"])
    graph, head = model.graph, model.graph.heads[0]
    x, y = data(loss)
    indices, step, lr = np.array([7, 2, 2, 9, 0, 4]), 6, 0.01
    before = model.get_weights()
    regularizers = {
        name: p.regularizer.model_dump() for name, p in graph.parameters.items() if p.regularizer is not None
    }

    reference = reference_forward(graph, before, x[indices], training=True, step=step)
    expected_loss = loss_value(loss, reference.logits, y[indices], from_logits=head.from_logits)
    expected_loss += regularization_penalty(before, regularizers)
    cotangent = loss_gradient(loss, reference.logits, y[indices])
    grads, _ = model.gradients(x[indices], {head.logits: cotangent}, training=True, step=step)
    for name, factors in regularizers.items():
        grads[name] = grads[name] + factors["l1"] * np.sign(before[name]) + 2 * factors["l2"] * before[name]
    spec = model.spec.training.optimizer
    options = options_from_spec(spec)
    trainable = {name: before[name] for name in grads}
    state = reference_optimizers.init_state(spec.type, options, trainable)
    expected, _ = reference_optimizers.apply(spec.type, options, trainable, grads, state, step + 1, lr)
    model.set_weights(before)

    engine = engine_for(model, x, y)
    value = engine.train_step(indices, step, lr)
    assert float(value) == pytest.approx(expected_loss, rel=1e-12)
    after = model.get_weights()
    for name, value in {**reference.updated_weights, **expected}.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-11, atol=1e-13, err_msg=name)


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


def test_optimizer_state_round_trip_resumes_identically():
    x, y = data("mse")
    first = net("mse", OPTIMIZERS["rmsprop_momentum"])
    engine = engine_for(first, x, y)
    for step in range(2):
        engine.train_step(np.arange(step, step + 5), step, 0.01)
    weights, state = first.get_weights(), engine.optimizer_state()
    engine.train_step(np.arange(5), 2, 0.01)

    second = net("mse", OPTIMIZERS["rmsprop_momentum"])
    second.set_weights(weights)
    resumed = engine_for(second, x, y)
    resumed.load_optimizer_state(state, 2)
    resumed.train_step(np.arange(5), 2, 0.01)
    for name, value in first.get_weights().items():
        np.testing.assert_array_equal(second.get_weights()[name], value, err_msg=name)
    with pytest.raises(UsageError, match="missing"):
        resumed.load_optimizer_state({}, 0)


def test_xla_compiled_step_equals_the_plain_one():
    x, y = data("binary_crossentropy")
    plain, compiled = net("binary_crossentropy"), net("binary_crossentropy")
    plain_loss = engine_for(plain, x, y).train_step(np.arange(6), 3, 0.01)
    compiled_loss = engine_for(compiled, x, y, compiled=True).train_step(np.arange(6), 3, 0.01)
    assert float(compiled_loss) == pytest.approx(float(plain_loss), rel=1e-12)
    for name, value in plain.get_weights().items():
        np.testing.assert_allclose(compiled.get_weights()[name], value, rtol=1e-11, atol=1e-13, err_msg=name)


def test_engine_checks_its_data():
    model = net()
    x, y = data("sparse_categorical_crossentropy")
    with pytest.raises(archspec.DataError, match="targets"):
        engine_for(model, x, y[:-1])
    with pytest.raises(UsageError, match="input"):
        engine_for(model, x[:, :2], y)
