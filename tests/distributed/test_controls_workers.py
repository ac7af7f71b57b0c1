"""Two workers follow one process (float64) with clipping, accumulation and class weights on.

Clipping acts on the gradient of the global batch (after the all-reduce), and each of a
step's accumulated batches is shared out between the workers, so the 2-worker run must
follow the 1-worker run as closely as without the controls.
"""

import functools

import numpy as np
import pytest
from paths import mnist_dir

import archspec
from archspec.backend import BACKENDS
from archspec.comparison import tensor_relative_difference
from archspec.data import load_dataset

SPEC = """
name: controls-workers
inputs: {image: {shape: [784]}}
layers:
  - {type: dense, units: 32, activation: relu, kernel_regularizer: {l2: 0.001}}
  - {type: dropout, rate: 0.2}
  - {type: dense, units: 10, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9}
  warmup_steps: 5
  clip_norm: 0.4
  clip_value: 0.05
  class_weight: {3: 2.0, 8: 0.5}
  accumulate_steps: 3
  batch_size: 17
  seed: 5
"""


@functools.cache
def mnist():
    splits = load_dataset({"dataset": "mnist", "view": "flat"}, data_dir=mnist_dir())
    (x, y), (x_test, y_test) = splits.train, splits.test
    return {"train": (x[:510], y[:510]), "test": (x_test[:100], y_test[:100])}  # 10 steps of 3 x 17 an epoch


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_follow_one_with_clipping_and_accumulation(backend):
    options = dict(backend=backend, data=mnist(), dtype="float64", epochs=3)
    single = archspec.train(SPEC, **options)
    several = archspec.train(SPEC, workers=2, **options)
    a, b = single.step_losses, several.step_losses
    assert len(a) == len(b) == 30
    relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    assert relative.max() <= 1e-9, f"step {int(np.argmax(relative))} differs by {relative.max():.3g}"
    wa, wb = single.model.get_weights(), several.model.get_weights()
    for name in wa:
        assert tensor_relative_difference(wa[name], wb[name]) <= 1e-8, name
    assert a[-5:].mean() < a[:5].mean()
