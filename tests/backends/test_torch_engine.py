"""The torch engine: losses, optimizer steps and state against the numpy reference; training end to end."""

from pathlib import Path

import numpy as np
import pytest
import torch

import archspec
from archspec.api import load_with_graph
from archspec.backends.torch import Engine
from archspec.backends.torch.engine import batch_loss
from archspec.definitions.optimizers import options_from_spec, state_slots
from archspec.errors import UsageError
from archspec.reference import optimizers as reference
from archspec.reference.forward import reference_forward
from archspec.reference.losses import loss_value, regularization_penalty
from archspec.trainer import prepare_targets

SPEC = """
name: engine-check
inputs: {{x: {{shape: [4, 3]}}}}
layers:
  - {{id: g, type: gru, units: 3, return_sequences: true}}
  - {{id: r, type: reshape, target_shape: [2, 2, 3]}}
  - {{id: c, type: conv2d, filters: 2, kernel_size: 2, padding: same, activation: relu,
     kernel_regularizer: {{l1: 0.01, l2: 0.02}}}}
  - {{id: f, type: flatten}}
  - {{id: bn, type: batch_norm, momentum: 0.8}}
  - {{id: d, type: dropout, rate: 0.3}}
  - {{id: out, type: dense, units: 3, activation: softmax, bias_regularizer: {{l2: 0.1}}}}
training:
  loss: sparse_categorical_crossentropy
  optimizer: {optimizer}
  batch_size: 5
  seed: 4
"""

OPTIMIZERS = [
    "{type: sgd, learning_rate: 0.1}",
    "{type: sgd, learning_rate: 0.1, momentum: 0.9}",
    "{type: sgd, learning_rate: 0.1, momentum: 0.8, nesterov: true, weight_decay: 0.01}",
    "{type: adam}",
    "{type: adam, beta_1: 0.8, beta_2: 0.95, epsilon: 1.0e-6, weight_decay: 0.1}",
    "{type: adamw, weight_decay: 0.3}",
    "{type: rmsprop}",
    "{type: rmsprop, rho: 0.9, momentum: 0.5, epsilon: 1.0e-4}",
    "{type: adadelta, rho: 0.5, epsilon: 1.0e-3}",
]


def setup(optimizer="{type: adam}", n=12, foreach=True, dtype="float64", compiled=False):
    spec, graph = load_with_graph(SPEC.format(optimizer=optimizer))
    model = archspec.compile(spec, backend="torch", dtype=dtype)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 4, 3)), rng.integers(0, 3, size=n)
    return model, Engine(model, x={"x": x}, y=y, training=spec.training, foreach=foreach, compiled=compiled), x, y


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("foreach", [True, False])
def test_optimizer_steps_and_state_equal_the_reference(optimizer, foreach):
    model, engine, _, _ = setup(optimizer, foreach=foreach)
    spec_optimizer = model.spec.training.optimizer
    name, options = spec_optimizer.type, options_from_spec(spec_optimizer)
    trainable = {k: p for k, p in model.graph.parameters.items() if p.trainable}
    params = {k: v for k, v in model.get_weights().items() if k in trainable}
    state = reference.init_state(name, options, params)
    rng = np.random.default_rng(1)
    for step, lr in enumerate([0.1, 0.05, 0.2]):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        params, state = reference.apply(name, options, params, grads, state, step + 1, lr)
        engine.optimizer_step_only(grads, lr, step)
    weights, slots = model.get_weights(), engine.optimizer_state()
    for key, value in params.items():
        np.testing.assert_allclose(weights[key], value, rtol=1e-12, atol=1e-15)
        for slot, expected in state[key].items():
            np.testing.assert_allclose(slots[f"{key}/{slot}"], expected, rtol=1e-12, atol=1e-15)
    assert set(slots) == {f"{k}/{s}" for k in params for s in state_slots(name, options)}


@pytest.mark.parametrize(
    "loss, from_logits",
    [
        ("sparse_categorical_crossentropy", True),
        ("sparse_categorical_crossentropy", False),
        ("categorical_crossentropy", True),
        ("categorical_crossentropy", False),
        ("binary_crossentropy", True),
        ("binary_crossentropy", False),
        ("mse", False),
        ("mae", False),
    ],
)
def test_batch_losses_equal_the_reference(loss, from_logits):
    rng = np.random.default_rng(2)
    columns = 1 if loss in ("binary_crossentropy", "mse", "mae") else 4
    output = rng.normal(size=(6, columns)) * 5
    if not from_logits and loss != "mse" and loss != "mae":
        output = 1 / (1 + np.exp(-output))  # probabilities, some clipped
        output[0, 0] = 1.0
    labels = rng.integers(0, columns if columns > 1 else 2, size=6)
    target = prepare_targets(labels, loss, max(columns, 2), "float64")
    if loss in ("mse", "mae"):
        target = rng.normal(size=(6, 1))
    expected = loss_value(loss, output, target, from_logits=from_logits)
    ours = batch_loss(loss, torch.from_numpy(output), torch.from_numpy(target), from_logits)
    assert float(ours) == pytest.approx(expected, rel=1e-13)


def softmax_cross_entropy_gradient(logits, labels):
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    return p / len(labels)


def test_train_steps_equal_reference_forward_gradients_and_updates():
    """Loss and weights after 3 steps equal: reference loss, model.gradients with the loss's
    cotangent plus the penalty gradient, and the reference optimizer (dropout and batch norm on)."""
    optimizer = "{type: sgd, learning_rate: 0.1, momentum: 0.8, nesterov: true}"
    model, engine, x, y = setup(optimizer)
    helper = archspec.compile(model.spec, backend="torch", dtype="float64")
    graph, opt = model.graph, model.spec.training.optimizer
    name, options = opt.type, options_from_spec(opt)
    regularizers = {k: p.regularizer.model_dump() for k, p in graph.parameters.items() if p.regularizer}
    weights = model.get_weights()
    trainable = [k for k, p in graph.parameters.items() if p.trainable]
    state = reference.init_state(name, options, {k: weights[k] for k in trainable})
    losses = []
    for step, indices in enumerate([np.array([3, 0, 7, 7, 1]), np.array([11, 2, 5, 4, 9]), np.array([6, 8])]):
        lr = 0.1 / (step + 1)
        losses.append(engine.train_step(indices, step, lr))
        result = reference_forward(graph, weights, x[indices], training=True, step=step)
        expected_loss = loss_value("sparse_categorical_crossentropy", result.logits, y[indices], from_logits=True)
        expected_loss += regularization_penalty(weights, regularizers)
        assert float(losses[-1]) == pytest.approx(expected_loss, rel=1e-12)
        helper.set_weights(weights)
        grads, _ = helper.gradients(
            x[indices],
            {graph.heads[0].logits: softmax_cross_entropy_gradient(result.logits, y[indices])},
            training=True,
            step=step,
        )
        for key, factors in regularizers.items():
            grads[key] = grads[key] + factors["l1"] * np.sign(weights[key]) + 2 * factors["l2"] * weights[key]
        params, state = reference.apply(name, options, {k: weights[k] for k in trainable}, grads, state, step + 1, lr)
        weights = {**result.updated_weights, **params}
    assert engine.losses_to_numpy(losses).dtype == np.float64
    ours = model.get_weights()
    for key, value in weights.items():
        np.testing.assert_allclose(ours[key], value, rtol=1e-11, atol=1e-13, err_msg=key)


def test_resuming_from_saved_state_continues_bit_for_bit():
    model, engine, x, y = setup("{type: adam}")
    for step in range(2):
        engine.train_step(np.arange(step, step + 5), step, 0.01)
    weights, slots = model.get_weights(), engine.optimizer_state()
    engine.train_step(np.arange(4, 9), 2, 0.01)

    fresh, resumed, _, _ = setup("{type: adam}")
    fresh.set_weights(weights)
    resumed.load_optimizer_state(slots, step=2)
    resumed.train_step(np.arange(4, 9), 2, 0.01)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(fresh.get_weights()[key], value)
    with pytest.raises(UsageError, match="does not fit"):
        resumed.load_optimizer_state({}, step=2)


def test_training_with_the_trainer_lowers_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x @ rng.normal(size=8) > 0).astype(np.int64)
    config = Path(__file__).resolve().parents[2] / "configs" / "logistic_regression.yaml"
    result = archspec.train(config, backend="torch", data=(x, y), epochs=10, evaluate_every_epoch=False)
    assert result.steps == 10 * 7
    assert result.step_losses[-5:].mean() < 0.6 * result.step_losses[:5].mean()
    assert result.final["train"]["accuracy"] > 0.85


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*")
def test_compiled_step_matches_the_eager_step():
    eager_model, eager, _, _ = setup("{type: rmsprop}")
    compiled_model, compiled, _, _ = setup("{type: rmsprop}", compiled=True)
    for step in range(2):
        a = eager.train_step(np.arange(5), step, 0.01)
        b = compiled.train_step(np.arange(5), step, 0.01)
        assert float(a) == pytest.approx(float(b), rel=1e-12)
    for key, value in eager_model.get_weights().items():
        np.testing.assert_allclose(compiled_model.get_weights()[key], value, rtol=1e-10, atol=1e-12)
