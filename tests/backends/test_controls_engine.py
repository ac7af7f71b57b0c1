"""Weighted losses and gradient clipping in each engine's step, against the numpy reference.

A step with sample weights and both clips on equals: the reference's weighted loss, the
model's gradients with the weighted loss's cotangent plus the penalty gradients, the
reference's ``clip_gradients`` and the reference optimizer.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from archspec.definitions.optimizers import options_from_spec
from archspec.losses import loss_value as production_loss_value
from archspec.reference import optimizers as reference
from archspec.reference.forward import reference_forward
from archspec.reference.losses import loss_value, regularization_penalty

# The engine tests' small nets, data and loss gradients (tests/backends is not a package).
_spec = importlib.util.spec_from_file_location("engine_tests", Path(__file__).with_name("test_engine.py"))
assert _spec is not None and _spec.loader is not None
_engine_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_engine_tests)
LOSSES, NET_OPTIMIZERS, data = _engine_tests.LOSSES, _engine_tests.NET_OPTIMIZERS, _engine_tests.data
loss_gradient, net = _engine_tests.loss_gradient, _engine_tests.net


def engine_with(backend, model, x, y, weights=None, **training):
    spec = model.spec.training.model_copy(update=training)
    return backend.module("engine").Engine(
        model, x={"x": x}, y=y, training=spec, sample_weight=weights, gradient_norms=True
    )


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_weighted_clipped_step_equals_reference(backend, loss):
    model = net(backend, loss=loss, optimizer=NET_OPTIMIZERS["sgd_nesterov"])
    graph, head = model.graph, model.graph.heads[0]
    x, y = data(loss)
    weights = np.random.default_rng(3).uniform(0.0, 3.0, len(x))
    indices, step, lr = np.array([7, 2, 2, 9, 0, 4]), 3, 0.05
    before = model.get_weights()
    regularizers = {n: p.regularizer.model_dump() for n, p in graph.parameters.items() if p.regularizer is not None}

    forward = reference_forward(graph, before, x[indices], training=True, step=step)
    w = weights[indices]
    expected_loss = loss_value(loss, forward.logits, y[indices], from_logits=head.from_logits, sample_weight=w)
    expected_loss += regularization_penalty(before, regularizers)
    cotangent = loss_gradient(loss, forward.logits, y[indices]) * w[:, None]
    grads, _ = model.gradients(x[indices], {head.logits: cotangent}, training=True, step=step)
    for name, factors in regularizers.items():
        grads[name] = grads[name] + factors["l1"] * np.sign(before[name]) + 2 * factors["l2"] * before[name]
    norm = reference.global_norm(grads)
    clip_norm, clip_value = norm / 3, 0.5 * max(float(np.abs(g).max()) for g in grads.values())
    clipped, measured = reference.clip_gradients(grads, clip_norm=clip_norm, clip_value=clip_value)
    assert measured == norm and reference.global_norm(clipped) == pytest.approx(clip_norm, rel=1e-12)
    spec = model.spec.training.optimizer
    options = options_from_spec(spec)
    trainable = {name: before[name] for name in grads}
    state = reference.init_state(spec.type, options, trainable)
    expected, _ = reference.apply(spec.type, options, trainable, clipped, state, step + 1, lr)
    model.set_weights(before)

    engine = engine_with(backend, model, x, y, weights, clip_norm=clip_norm, clip_value=clip_value)
    engine.load_optimizer_state(engine.optimizer_state(), step)
    value = engine.train_step(indices, step, lr)
    assert float(value) == pytest.approx(expected_loss, rel=1e-12)
    assert float(engine.last_gradient_norm) == pytest.approx(norm, rel=1e-12)
    after = model.get_weights()
    for name, value in {**forward.updated_weights, **expected}.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-11, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("clip", [{"clip_norm": 0.3}, {"clip_value": 0.2}, {"clip_norm": 1.5, "clip_value": 0.4}])
def test_clipped_optimizer_steps_equal_the_reference(backend, clip):
    model = net(backend, optimizer=NET_OPTIMIZERS["adam"])
    x, y = data("sparse_categorical_crossentropy")
    engine = engine_with(backend, model, x, y, **clip)
    spec = model.spec.training.optimizer
    options = options_from_spec(spec)
    trainable = [name for name, p in model.graph.parameters.items() if p.trainable]
    params = {name: value for name, value in model.get_weights().items() if name in trainable}
    state = reference.init_state(spec.type, options, params)
    rng = np.random.default_rng(5)
    for step, lr in enumerate([0.1, 0.03, 0.2]):
        grads = {name: rng.normal(scale=0.3, size=value.shape) for name, value in params.items()}
        engine.optimizer_step_only(grads, lr, step)
        clipped, norm = reference.clip_gradients(grads, **clip)
        assert float(engine.last_gradient_norm) == pytest.approx(norm, rel=1e-13)
        params, state = reference.apply(spec.type, options, params, clipped, state, step + 1, lr)
    weights = model.get_weights()
    for name, value in params.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-12, atol=1e-14, err_msg=name)


def test_reference_clipping_is_the_frameworks():
    """clip_norm is tf.clip_by_global_norm exactly, and torch's clip_grad_norm_ up to its 1e-6."""
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    clipped, norm = reference.clip_gradients(grads, clip_norm=0.7)
    tf_clipped, tf_norm = tf.clip_by_global_norm([tf.constant(g) for g in grads.values()], 0.7)
    assert norm == pytest.approx(float(tf_norm), rel=1e-14)
    for mine, theirs in zip(clipped.values(), tf_clipped):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-14)
    tensors = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for tensor, g in zip(tensors, grads.values()):
        tensor.grad = torch.tensor(g)
    torch_norm = torch.nn.utils.clip_grad_norm_(tensors, 0.7)
    assert norm == pytest.approx(float(torch_norm), rel=1e-14)
    for mine, tensor in zip(clipped.values(), tensors):
        np.testing.assert_allclose(mine, tensor.grad.numpy(), rtol=1e-5)
    by_value, _ = reference.clip_gradients(grads, clip_value=0.5)
    for mine, g in zip(by_value.values(), grads.values()):
        np.testing.assert_array_equal(mine, np.clip(g, -0.5, 0.5))
    unclipped, _ = reference.clip_gradients(grads, clip_norm=norm * 2)
    for mine, g in zip(unclipped.values(), grads.values()):
        np.testing.assert_array_equal(mine, g)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_weighted_losses_of_the_core_equal_the_reference(loss):
    rng = np.random.default_rng(2)
    units = LOSSES[loss][0]
    logits = rng.normal(size=(9, units))
    _, y = data(loss, count=9)
    weights = rng.uniform(0, 2, 9)
    for from_logits in (True, False):
        output = logits
        if not from_logits:
            output = 1 / (1 + np.exp(-logits)) if units == 1 else np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        if loss in ("mse", "mae") and not from_logits:
            continue
        expected = loss_value(loss, output, y, from_logits=from_logits, sample_weight=weights)
        ours = production_loss_value(loss, output, y, from_logits=from_logits, sample_weight=weights)
        assert ours == pytest.approx(expected, rel=1e-13)
        ones = production_loss_value(loss, output, y, from_logits=from_logits, sample_weight=np.ones(9))
        assert ones == pytest.approx(loss_value(loss, output, y, from_logits=from_logits), rel=1e-13)
