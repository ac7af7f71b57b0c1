"""The training engine of every backend against the numpy reference: losses, optimizer steps and
state, whole training steps, resuming, the checks of its data, and training end to end."""

import numpy as np
import pytest
from paths import CONFIGS

import archspec
from archspec.api import load_with_graph
from archspec.definitions.optimizers import options_from_spec, state_slots
from archspec.errors import DataError, UsageError
from archspec.reference import optimizers as reference
from archspec.reference.forward import reference_forward
from archspec.reference.losses import loss_value, regularization_penalty
from archspec.targets import prepare_targets

# A chain through a recurrence, a reshape to an image and a convolution: layout conversions
# on the way, penalties, batch norm and dropout; initial weights.
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


def setup(backend, optimizer="{type: adam}", n=12, dtype="float64", **options):
    spec, _ = load_with_graph(SPEC.format(optimizer=optimizer))
    model = archspec.compile(spec, backend=backend.name, dtype=dtype)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 4, 3)), rng.integers(0, 3, size=n)
    return model, backend.engine(model, {"x": x}, y, **options), x, y


# A recurrence into dense layers, for every loss; random weights (statistics too).
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

NET_OPTIMIZERS = {
    "sgd": "{type: sgd, learning_rate: 0.1}",
    "sgd_nesterov": "{type: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01}",
    "adam": "{type: adam, weight_decay: 0.05}",
    "adamw": "{type: adamw, beta_1: 0.8, epsilon: 0.001}",
    "rmsprop": "{type: rmsprop}",
    "rmsprop_momentum": "{type: rmsprop, momentum: 0.5, rho: 0.9}",
    "adadelta": "{type: adadelta, rho: 0.95}",
}


def net(backend, loss="sparse_categorical_crossentropy", optimizer="{type: adam}"):
    units, activation = LOSSES[loss]
    source = NET.format(loss=loss, units=units, activation=activation, optimizer=optimizer)
    model = archspec.compile(source, backend=backend.name)
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


# --- losses ---------------------------------------------------------------------------


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
def test_batch_losses_equal_the_reference(backend, loss, from_logits):
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
    assert backend.batch_loss(loss, output, target, from_logits) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("from_logits", [True, False])
def test_batch_loss_on_uniform_outputs_equals_the_reference(backend, name, from_logits):
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
    value = backend.batch_loss(name, output, target, from_logits)
    assert value == pytest.approx(loss_value(name, output, target, from_logits=from_logits), rel=1e-14)


def test_binary_crossentropy_gradient_is_exact_at_zero_logit(backend):
    z = np.array([[0.0], [0.0], [2.0]])
    y = np.array([[1.0], [0.0], [1.0]])
    gradient = backend.batch_loss_gradient("binary_crossentropy", z, y, True)
    expected = (1 / (1 + np.exp(-np.array([0.0, 0.0, 2.0]))) - [1.0, 0.0, 1.0]) / 3
    np.testing.assert_allclose(gradient[:, 0], expected, rtol=1e-14)


# --- optimizer updates ----------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_steps_and_state_equal_the_reference(backend, optimizer):
    """Every implementation of the updates a backend has (torch: the multi-tensor ``foreach``
    loops and the single-tensor ones)."""
    for options in backend.engine_variants:
        _check_optimizer_steps(backend, optimizer, options)


def _check_optimizer_steps(backend, optimizer, engine_options):
    model, engine, _, _ = setup(backend, optimizer, **engine_options)
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


@pytest.mark.parametrize("optimizer", sorted(NET_OPTIMIZERS))
def test_optimizer_steps_from_random_weights_equal_the_reference(backend, optimizer):
    model = net(backend, optimizer=NET_OPTIMIZERS[optimizer])
    x, y = data("sparse_categorical_crossentropy")
    engine = backend.engine(model, {"x": x}, y)
    spec = model.spec.training.optimizer
    options = options_from_spec(spec)
    trainable = [name for name, p in model.graph.parameters.items() if p.trainable]
    params = {name: value for name, value in model.get_weights().items() if name in trainable}
    state = reference.init_state(spec.type, options, params)
    rng = np.random.default_rng(5)
    for step, lr in enumerate([0.1, 0.03, 0.2]):
        grads = {name: rng.normal(size=value.shape) for name, value in params.items()}
        engine.optimizer_step_only(grads, lr, step)
        params, state = reference.apply(spec.type, options, params, grads, state, step + 1, lr)
    weights = model.get_weights()
    for name, value in params.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-12, atol=1e-14, err_msg=name)
    saved = engine.optimizer_state()
    assert set(saved) == {f"{n}/{s}" for n in trainable for s in state_slots(spec.type, options)}
    for name, slots in state.items():
        for slot, value in slots.items():
            np.testing.assert_allclose(saved[f"{name}/{slot}"], value, rtol=1e-12, atol=1e-14, err_msg=f"{name}/{slot}")


# --- whole training steps -------------------------------------------------------------


def softmax_cross_entropy_gradient(logits, labels):
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    return p / len(labels)


def test_train_steps_equal_reference_forward_gradients_and_updates(backend):
    """Loss and weights after 3 steps equal: reference loss, model.gradients with the loss's
    cotangent plus the penalty gradient, and the reference optimizer (dropout and batch norm on)."""
    optimizer = "{type: sgd, learning_rate: 0.1, momentum: 0.8, nesterov: true}"
    model, engine, x, y = setup(backend, optimizer)
    helper = archspec.compile(model.spec, backend=backend.name, dtype="float64")
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
def test_train_step_equals_reference_for_every_loss(backend, loss):
    model = net(backend, loss=loss, optimizer=NET_OPTIMIZERS["adamw"])
    graph, head = model.graph, model.graph.heads[0]
    x, y = data(loss)
    indices, step, lr = np.array([7, 2, 2, 9, 0, 4]), 6, 0.01
    before = model.get_weights()
    regularizers = {
        name: p.regularizer.model_dump() for name, p in graph.parameters.items() if p.regularizer is not None
    }

    forward = reference_forward(graph, before, x[indices], training=True, step=step)
    expected_loss = loss_value(loss, forward.logits, y[indices], from_logits=head.from_logits)
    expected_loss += regularization_penalty(before, regularizers)
    cotangent = loss_gradient(loss, forward.logits, y[indices])
    grads, _ = model.gradients(x[indices], {head.logits: cotangent}, training=True, step=step)
    for name, factors in regularizers.items():
        grads[name] = grads[name] + factors["l1"] * np.sign(before[name]) + 2 * factors["l2"] * before[name]
    spec = model.spec.training.optimizer
    options = options_from_spec(spec)
    trainable = {name: before[name] for name in grads}
    state = reference.init_state(spec.type, options, trainable)
    expected, _ = reference.apply(spec.type, options, trainable, grads, state, step + 1, lr)
    model.set_weights(before)

    engine = backend.engine(model, {"x": x}, y)
    # The run resumes at ``step`` with fresh (zero) slots, as the reference starts from init_state:
    # torch.optim counts its own updates, so the engine must be told how many came before.
    engine.load_optimizer_state(engine.optimizer_state(), step)
    value = engine.train_step(indices, step, lr)
    assert float(value) == pytest.approx(expected_loss, rel=1e-12)
    after = model.get_weights()
    for name, value in {**forward.updated_weights, **expected}.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-11, atol=1e-13, err_msg=name)


def test_losses_come_back_at_once(backend):
    model = net(backend)
    x, y = data("sparse_categorical_crossentropy", count=11)
    engine = backend.engine(model, {"x": x}, y)
    order = np.random.default_rng(0).permutation(11)
    losses = [engine.train_step(order[i : i + 4], step, 0.01 * (step + 1)) for step, i in enumerate(range(0, 11, 4))]
    values = engine.losses_to_numpy(losses)
    assert values.dtype == np.float64 and values.shape == (3,) and np.all(np.isfinite(values))
    assert engine.losses_to_numpy([]).shape == (0,)


# --- optimizer state and resuming -------------------------------------------------------


def test_resuming_from_saved_state_continues_bit_for_bit(backend):
    model, engine, _, _ = setup(backend, "{type: adam}")
    for step in range(2):
        engine.train_step(np.arange(step, step + 5), step, 0.01)
    weights, slots = model.get_weights(), engine.optimizer_state()
    engine.train_step(np.arange(4, 9), 2, 0.01)

    fresh, resumed, _, _ = setup(backend, "{type: adam}")
    fresh.set_weights(weights)
    resumed.load_optimizer_state(slots, step=2)
    resumed.train_step(np.arange(4, 9), 2, 0.01)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(fresh.get_weights()[key], value)
    with pytest.raises(UsageError, match="does not fit"):
        resumed.load_optimizer_state({}, step=2)


def test_optimizer_state_round_trip_resumes_identically(backend):
    x, y = data("mse")
    first = net(backend, "mse", NET_OPTIMIZERS["rmsprop_momentum"])
    engine = backend.engine(first, {"x": x}, y)
    for step in range(2):
        engine.train_step(np.arange(step, step + 5), step, 0.01)
    weights, state = first.get_weights(), engine.optimizer_state()
    engine.train_step(np.arange(5), 2, 0.01)

    second = net(backend, "mse", NET_OPTIMIZERS["rmsprop_momentum"])
    second.set_weights(weights)
    resumed = backend.engine(second, {"x": x}, y)
    resumed.load_optimizer_state(state, 2)
    resumed.train_step(np.arange(5), 2, 0.01)
    for name, value in first.get_weights().items():
        np.testing.assert_array_equal(second.get_weights()[name], value, err_msg=name)
    with pytest.raises(UsageError, match="missing"):
        resumed.load_optimizer_state({}, 0)


def test_optimizer_state_of_the_wrong_shape_is_refused(backend):
    _, engine, _, _ = setup(backend)
    state = engine.optimizer_state()
    key = next(iter(state))
    with pytest.raises(UsageError, match=rf"optimizer slot '{key}': expected shape \[.*\], received \[1\]"):
        engine.load_optimizer_state({**state, key: np.zeros(1)}, step=1)


# --- checks and training end to end -----------------------------------------------------


def test_engine_checks_its_data(backend):
    model = net(backend)
    x, y = data("sparse_categorical_crossentropy")
    with pytest.raises(DataError, match="targets"):
        backend.engine(model, {"x": x}, y[:-1])
    with pytest.raises(UsageError, match="input"):
        backend.engine(model, {"x": x[:, :2]}, y)


def test_training_with_the_trainer_lowers_the_loss(backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x @ rng.normal(size=8) > 0).astype(np.int64)
    config = CONFIGS / "logistic_regression.yaml"
    result = archspec.train(config, backend=backend.name, data=(x, y), epochs=10, evaluate_every_epoch=False)
    assert result.steps == 10 * 7
    assert result.step_losses[-5:].mean() < 0.6 * result.step_losses[:5].mean()
    assert result.final["train"]["accuracy"] > 0.85


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*")
def test_compiled_step_matches_the_eager_step(backend):
    eager_model, eager, _, _ = setup(backend, "{type: rmsprop}")
    compiled_model, compiled, _, _ = setup(backend, "{type: rmsprop}", compiled=True)
    for step in range(2):
        a = eager.train_step(np.arange(5), step, 0.01)
        b = compiled.train_step(np.arange(5), step, 0.01)
        assert float(a) == pytest.approx(float(b), rel=1e-12)
    for key, value in eager_model.get_weights().items():
        np.testing.assert_allclose(compiled_model.get_weights()[key], value, rtol=1e-10, atol=1e-12)
