"""Data-parallel training follows the single-process trajectory (float64), on every backend.

Two local workers (gloo / MultiWorkerMirroredStrategy / jax.distributed on loopback) against one process:
every per-step loss within 1e-9 relative, every final weight tensor within 1e-8 relative
(max |a - b| / max |a|), with and without dropout and batch normalisation, with a global
batch that does not divide evenly between the workers (51 = 26 + 25; last batch 41 = 21 + 20).
"""

import functools

import numpy as np
import pytest
from paths import CONFIGS, mnist_dir

import archspec
from archspec.backend import BACKENDS
from archspec.comparison import tensor_relative_difference
from archspec.data import load_dataset

SAMPLES = 1010  # 19 batches of 51 and one of 41: 20 steps an epoch
STEPS = 60  # three epochs, so the sample order is reshuffled twice

PLAIN_MLP = """
name: plain-mlp
inputs: {image: {shape: [784]}}
layers:
  - {type: dense, units: 64, activation: relu, kernel_regularizer: {l2: 0.001}}
  - {type: dense, units: 32, activation: tanh}
  - {type: dense, units: 10, activation: softmax}
training: {loss: sparse_categorical_crossentropy, optimizer: {type: adam, learning_rate: 0.002}, batch_size: 51, seed: 5}
data: {dataset: mnist, view: flat}
"""

CASES = {
    # dense layers, batch norm, dropout, an add merge, L2, nesterov momentum and a cosine schedule
    "residual_bn_dropout": lambda: archspec.load(CONFIGS / "mnist_residual.yaml"),
    # convolutions, pooling and dropout
    "cnn_dropout": lambda: archspec.load(CONFIGS / "mnist_cnn.yaml"),
    # neither dropout nor batch norm
    "plain_mlp": lambda: archspec.load(PLAIN_MLP),
}


@functools.cache
def mnist(view: str):
    splits = load_dataset({"dataset": "mnist", "view": view}, data_dir=mnist_dir())
    (x, y), (x_test, y_test) = splits.train, splits.test
    return {"train": (x[:SAMPLES], y[:SAMPLES]), "test": (x_test[:200], y_test[:200])}


def with_batch(spec, batch_size):
    return spec.model_copy(update={"training": spec.training.model_copy(update={"batch_size": batch_size})})


def assert_same_trajectory(label, single, several):
    a, b = single.step_losses, several.step_losses
    assert len(a) == len(b) == STEPS, f"{label}: {len(a)} vs {len(b)} steps"
    relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    worst = int(np.argmax(relative))
    assert relative[worst] <= 1e-9, f"{label}: step {worst} loss {a[worst]!r} (1 worker) vs {b[worst]!r} (2 workers)"
    wa, wb = single.model.get_weights(), several.model.get_weights()
    assert wa.keys() == wb.keys()
    for name in wa:
        difference = tensor_relative_difference(wa[name], wb[name])
        assert difference <= 1e-8, f"{label}: final weight {name} differs by {difference:.3g} relative (> 1e-8)"
    assert a[-1] < a[0], f"{label}: the loss did not go down ({a[0]:.4f} -> {a[-1]:.4f})"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_two_workers_follow_one_float64(backend, case):
    spec = with_batch(CASES[case](), 51)
    data = mnist(spec.data.view)
    options = dict(backend=backend, data=data, dtype="float64", max_steps=STEPS, epochs=5)
    single = archspec.train(spec, **options)
    several = archspec.train(spec, workers=2, **options)
    assert several.config["workers"] == 2
    assert_same_trajectory(f"{case}/{backend}", single, several)
    # Rank 0 evaluated the final model: the same metrics as the single process.
    for split in ("train", "test"):
        assert several.final[split]["loss"] == pytest.approx(single.final[split]["loss"], rel=1e-9)
