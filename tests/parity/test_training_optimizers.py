"""Training parity of every optimizer and schedule (with L2 and dropout), and of a model with two
inputs and two outputs: float64, 200 steps, every two registered backends on the same
trajectory (bounds: ``parity/trajectory.py``).
"""

import pytest
from paths import CONFIGS, mnist_dir

import archspec
from archspec.backend import BACKENDS
from archspec.data import load_dataset
from parity.trajectory import STEPS, SUBSET, assert_same_trajectory, mnist, train_all, with_training

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
    results = train_all(spec, data=mnist("flat"), dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(f"mlp-l2-dropout/{optimizer}", results)


def test_two_inputs_two_outputs_config_float64():
    """mnist_two_heads (the digit and a noisy copy -> digit and "is even"): the weighted sum of
    the two losses follows the same trajectory on every backend, and its first step is the
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
    results = train_all(spec, data=data, dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory("mnist_two_heads", results)
    assert set(results[BACKENDS[0]].final["test"]) == {
        "loss",
        "digit_loss",
        "digit_accuracy",
        "even_loss",
        "even_accuracy",
        "even_auc",
    }

    graph = resolve(spec)
    initial = archspec.compile(spec, backend=BACKENDS[0], dtype="float64").get_weights()
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
