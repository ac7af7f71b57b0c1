"""Training controls follow the same float64 trajectory on every backend.

Clipping (by value and by global norm), warm-up, class and sample weights and gradient
accumulation together over 200 steps; early stopping with reduce-on-plateau and restored
best weights (the same stopping epoch on every backend); and accumulation of k batches of b equal
to one batch of k * b on each backend. Each backend is held to the first of the registry.
"""

import functools

import numpy as np
import pytest
from paths import mnist_dir

import archspec
from archspec.backend import BACKENDS
from archspec.comparison import tensor_relative_difference
from archspec.data import load_dataset

FIRST, OTHERS = BACKENDS[0], BACKENDS[1:]


@functools.cache
def mnist():
    splits = load_dataset({"dataset": "mnist", "view": "flat"}, data_dir=mnist_dir())
    return splits.train, splits.test


def assert_same(label, a_run, b_run, *, loss_bound=1e-9, weight_bound=1e-8, steps=None):
    a, b = a_run.step_losses, b_run.step_losses
    assert len(a) == len(b) and (steps is None or len(a) == steps), f"{label}: {len(a)} vs {len(b)} steps"
    relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    worst = int(np.argmax(relative))
    assert relative[worst] <= loss_bound, (
        f"{label}: step {worst} loss {a[worst]!r} vs {b[worst]!r} ({relative[worst]:.3g})"
    )
    wa, wb = a_run.model.get_weights(), b_run.model.get_weights()
    for name in wa:
        difference = tensor_relative_difference(wa[name], wb[name])
        assert difference <= weight_bound, f"{label}: final weight {name} differs by {difference:.3g} relative"
    return float(relative.max())


TOGETHER = """
name: controls-together
inputs: {image: {shape: [784]}}
layers:
  - {type: dense, units: 64, activation: relu, kernel_regularizer: {l2: 0.001}}
  - {type: dropout, rate: 0.3}
  - {type: dense, units: 32, activation: tanh}
  - {type: dense, units: 10, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9}
  schedule: {type: cosine, decay_steps: 200, alpha: 0.1}
  warmup_steps: 30
  clip_norm: 0.5
  clip_value: 0.05
  class_weight: {0: 2.0, 1: 0.5, 7: 3.0}
  accumulate_steps: 2
  batch_size: 32
  seed: 3
"""


def test_clipping_warmup_weights_and_accumulation_together_float64():
    (x, y), (x_test, y_test) = mnist()
    weights = np.random.default_rng(0).uniform(0.2, 2.0, 3200)
    data = {"train": (x[:3200], y[:3200], weights), "test": (x_test[:500], y_test[:500])}
    options = dict(data=data, dtype="float64", max_steps=200, epochs=10)  # 50 steps of 2 x 32 an epoch
    runs = {backend: archspec.train(TOGETHER, backend=backend, **options) for backend in BACKENDS}
    for other in OTHERS:
        label = f"clip+warmup+weights+accumulation, {FIRST} vs {other}"
        assert_same(label, runs[FIRST], runs[other], steps=200)
        assert runs[other].final["test"]["loss"] == pytest.approx(runs[FIRST].final["test"]["loss"], rel=1e-9)
    a = runs[FIRST].step_losses
    assert a[-20:].mean() < a[:20].mean(), "the loss did not go down"
    # The clips bite: without them the run is another one.
    unclipped = TOGETHER.replace("  clip_norm: 0.5\n  clip_value: 0.05\n", "")
    free = archspec.train(unclipped, backend=FIRST, **options)
    assert np.abs(free.step_losses - a).max() > 1e-3


EARLY = """
name: controls-early
inputs: {image: {shape: [784]}}
layers:
  - {type: dense, units: 64, activation: relu}
  - {type: dropout, rate: 0.2}
  - {type: dense, units: 10, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.003}
  batch_size: 32
  epochs: 30
  metrics: [accuracy]
  seed: 1
  early_stopping: {monitor: validation_loss, patience: 2, restore_best: true}
  reduce_on_plateau: {monitor: validation_loss, patience: 1, factor: 0.5}
"""


def test_early_stopping_and_plateau_stop_at_the_same_epoch_float64():
    (x, y), (x_test, y_test) = mnist()
    data = {"train": (x[:640], y[:640]), "validation": (x[640:1140], y[640:1140]), "test": (x_test[:300], y_test[:300])}
    runs = {backend: archspec.train(EARLY, backend=backend, data=data, dtype="float64") for backend in BACKENDS}
    for other in OTHERS:
        assert_same(f"early stopping, {FIRST} vs {other}", runs[FIRST], runs[other])
    for run in runs.values():
        assert run.config["stopped"].startswith("early stopping after epoch 9"), run.config["stopped"]
        assert run.config["best_epoch"] == 7 and run.config["restored_best"] and len(run.history) == 9
        # restored: the final model is the best epoch's (its validation loss, computed again)
        assert run.final["validation"]["loss"] == run.history[6]["validation_loss"]
        rates = [row["learning_rate"] for row in run.history]
        assert rates == [0.003] * 6 + [0.0015] * 2 + [0.00075]  # reduced after epochs 6 and 8
    assert len({run.config["stopped"] for run in runs.values()}) == 1, {b: r.config["stopped"] for b, r in runs.items()}


ACCUMULATED = """
name: accumulated
inputs: {image: {shape: [784]}}
layers:
  - {type: dense, units: 32, activation: relu}
  - {type: dropout, rate: 0.25}
  - {type: dense, units: 10, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.002}
  batch_size: %d
  accumulate_steps: %d
  seed: 2
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_batches_of_b_equal_one_batch_of_k_b_float64(backend):
    (x, y), _ = mnist()
    data = (x[:1000], y[:1000])  # 40 batches of 25: 10 steps of 4 x 25, or of 100
    options = dict(backend=backend, data=data, dtype="float64", epochs=3)
    accumulated = archspec.train(ACCUMULATED % (25, 4), **options)
    large = archspec.train(ACCUMULATED % (100, 1), **options)
    assert accumulated.steps == large.steps == 30
    assert_same(f"{backend} 4 x 25 vs 100", accumulated, large, loss_bound=1e-12, weight_bound=1e-12)
