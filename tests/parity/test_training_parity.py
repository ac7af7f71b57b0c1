"""Training parity: the same spec trained on both backends follows the same trajectory.

float64: every per-step loss within 1e-9 relative over at least 200 steps, every final
weight tensor within 1e-8 relative (max |a - b| / max |a| per tensor), for every trainable config, every optimizer and
schedule, with L2 and dropout. float32 (one epoch on full MNIST): test_training_float32.py,
a file of its own so that `make test`'s workers share the long cases.
"""

import functools

import numpy as np
import pytest
from paths import CONFIGS, mnist_dir

import archspec
from archspec.comparison import tensor_relative_difference
from archspec.data import load_dataset

STEPS = 200
SUBSET = 3200  # 50 batches of 64: 200 steps cover four epochs (so reshuffling is exercised)


@functools.cache
def mnist(view: str):
    splits = load_dataset({"dataset": "mnist", "view": view}, data_dir=mnist_dir())
    (x, y), (x_test, y_test) = splits.train, splits.test
    return {"train": (x[:SUBSET], y[:SUBSET]), "test": (x_test[:500], y_test[:500])}


def with_training(spec, **changes):
    training = spec.training.model_copy(update=changes)
    return spec.model_copy(update={"training": training})


def run_both(spec, **options):
    return {backend: archspec.train(spec, backend=backend, **options) for backend in ("torch", "tensorflow")}


# An attention key bias adds the same q . b to every score of a query's row, which the softmax
# ignores: its gradient is zero up to round-off, so it stays at its initial zeros up to noise
# (~1e-12) and a relative difference between two backends' noise means nothing. It is compared
# absolutely.
NEAR_ZERO_SUFFIXES = (".key_bias",)


def assert_same_trajectory(label, results, steps=STEPS):
    torch_run, keras_run = results["torch"], results["tensorflow"]
    a, b = torch_run.step_losses, keras_run.step_losses
    assert len(a) == len(b) == steps, f"{label}: {len(a)} vs {len(b)} steps"
    scale = np.maximum(np.abs(a), np.abs(b))
    relative = np.abs(a - b) / scale
    worst = int(np.argmax(relative))
    assert relative[worst] <= 1e-9, (
        f"{label}: step {worst} loss torch {a[worst]!r} vs tensorflow {b[worst]!r} (relative {relative[worst]:.3g} > 1e-9)"
    )
    wa, wb = torch_run.model.get_weights(), keras_run.model.get_weights()
    for name in wa:
        if name.endswith(NEAR_ZERO_SUFFIXES):
            difference = float(np.max(np.abs(wa[name] - wb[name])))
            assert difference <= 1e-9, f"{label}: final weight {name} differs by {difference:.3g} (> 1e-9)"
            continue
        difference = tensor_relative_difference(wa[name], wb[name])
        assert difference <= 1e-8, f"{label}: final weight {name} differs by {difference:.3g} relative (> 1e-8)"
    assert a[-1] < a[0], f"{label}: the loss did not go down ({a[0]:.4f} -> {a[-1]:.4f})"


CONFIG_CASES = {
    "mnist_mlp": {},
    "mnist_cnn": {},
    "mnist_lstm": {},
    "mnist_gru": {},
    "mnist_bidirectional": {},
    "mnist_residual": {},
    "mnist_tcn": {},
    "mnist_transformer": {},
}


@pytest.mark.parametrize("config", sorted(CONFIG_CASES))
def test_configs_follow_the_same_trajectory_float64(config):
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    spec = with_training(spec, batch_size=64)
    results = run_both(spec, data=mnist(spec.data.view), dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(config, results)


SEQUENCE_CONFIGS = ["sequences_masked_lstm", "sequences_masked_transformer"]


@pytest.mark.parametrize("config", SEQUENCE_CONFIGS)
def test_masked_sequence_configs_follow_the_same_trajectory_float64(config):
    spec = with_training(archspec.load(CONFIGS / f"{config}.yaml"), batch_size=64)
    splits = load_dataset(spec.data.model_dump())
    (x, y), (x_test, y_test) = splits.train, splits.test
    data = {"train": (x[:SUBSET], y[:SUBSET]), "test": (x_test[:500], y_test[:500])}
    results = run_both(spec, data=data, dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(config, results)


OPTIMIZERS = {
    "sgd": {"type": "sgd", "learning_rate": 0.05},
    "sgd_momentum": {"type": "sgd", "learning_rate": 0.02, "momentum": 0.9, "weight_decay": 1e-4},
    "sgd_nesterov": {"type": "sgd", "learning_rate": 0.02, "momentum": 0.9, "nesterov": True},
    "adam": {"type": "adam", "learning_rate": 0.001, "weight_decay": 1e-4},
    "adamw": {"type": "adamw", "learning_rate": 0.001},
    "rmsprop": {"type": "rmsprop", "learning_rate": 0.001, "momentum": 0.5},
    "adadelta": {"type": "adadelta", "learning_rate": 1.0},
}
SCHEDULES = {
    "sgd": {"type": "step", "step_size": 60, "gamma": 0.5},
    "adam": {"type": "exponential", "decay_steps": 50, "decay_rate": 0.7},
    "rmsprop": {"type": "cosine", "decay_steps": 150, "alpha": 0.05},
    "adadelta": {"type": "exponential", "decay_steps": 40, "decay_rate": 0.8, "staircase": True},
}

L2_MLP = """
name: mlp-l2-dropout
inputs: {image: {shape: [784]}}
layers:
  - {type: dense, units: 64, activation: relu, kernel_regularizer: {l2: 0.001}, bias_regularizer: {l1: 0.0001}}
  - {type: dropout, rate: 0.3}
  - {type: dense, units: 32, activation: tanh, kernel_regularizer: {l1: 0.0001, l2: 0.0005}}
  - {type: dropout, rate: 0.1}
  - {type: dense, units: 10, activation: softmax}
training: {loss: sparse_categorical_crossentropy, batch_size: 64, seed: 3}
data: {dataset: mnist, view: flat}
"""


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_with_l2_and_dropout_float64(optimizer):
    from archspec.spec.training import Training

    spec = archspec.load(L2_MLP)
    update = {"optimizer": OPTIMIZERS[optimizer]}
    if optimizer in SCHEDULES:
        update["schedule"] = SCHEDULES[optimizer]
    training = Training.model_validate({**spec.training.model_dump(), **update})
    spec = spec.model_copy(update={"training": training})
    results = run_both(spec, data=mnist("flat"), dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(f"mlp-l2-dropout/{optimizer}", results)


def test_two_inputs_two_outputs_config_float64():
    """mnist_two_heads (the digit and a noisy copy -> digit and "is even"): the weighted sum of
    the two losses follows the same trajectory on both backends, and its first step is the
    numpy reference's weighted sum (dropout masks of step 0 included)."""
    from archspec.data.splits import take
    from archspec.graph import resolve
    from archspec.reference.forward import reference_forward
    from archspec.reference.losses import total_loss
    from archspec.training.order import step_indices

    spec = with_training(archspec.load(CONFIGS / "mnist_two_heads.yaml"), batch_size=64)
    splits = load_dataset(spec.data.model_dump(mode="json"), data_dir=mnist_dir(), seed=spec.training.seed)
    (x, y), (x_test, y_test) = splits.train, splits.test
    data = {
        "train": (take(x, slice(0, SUBSET)), take(y, slice(0, SUBSET))),
        "test": (take(x_test, slice(0, 500)), take(y_test, slice(0, 500))),
    }
    results = run_both(spec, data=data, dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory("mnist_two_heads", results)
    assert set(results["torch"].final["test"]) == {
        "loss",
        "digit_loss",
        "digit_accuracy",
        "even_loss",
        "even_accuracy",
        "even_auc",
    }

    graph = resolve(spec)
    initial = archspec.compile(spec, backend="torch", dtype="float64").get_weights()
    first = step_indices(0, spec.training.seed, SUBSET, spec.training.batch_size, spec.training.shuffle)
    tensors = reference_forward(graph, initial, take(data["train"][0], first), training=True, step=0).tensors
    train_y = data["train"][1]
    parts = [
        (
            spec.training.loss_of(h.output),
            tensors[h.logits],
            train_y[h.output][first],
            h.from_logits,
            spec.training.loss_weight_of(h.output),
        )
        for h in graph.heads
    ]
    expected = total_loss(parts)
    for backend, result in results.items():
        relative = abs(result.step_losses[0] - expected) / expected
        assert relative <= 1e-12, f"{backend}: first step loss {result.step_losses[0]!r} vs reference {expected!r}"
