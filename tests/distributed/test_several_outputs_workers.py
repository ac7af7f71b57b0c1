"""Two workers train a model with two inputs and two outputs as one process does (float64):
the targets of every output are shared out like the inputs, and evaluation gathers every head."""

import numpy as np
import pytest

import archspec

SPEC = """
name: two-heads-workers
inputs:
  a: {shape: [6]}
  b: {shape: [4]}
layers:
  - {id: left, type: dense, units: 8, activation: tanh, inputs: [a]}
  - {id: right, type: dense, units: 8, activation: relu, inputs: [b]}
  - {id: joined, type: concatenate, inputs: [left, right]}
  - {id: drop, type: dropout, rate: 0.2}
  - {id: kind, type: dense, units: 3, activation: softmax, inputs: [drop]}
  - {id: size, type: dense, units: 1, inputs: [drop]}
outputs: [kind, size]
training:
  loss: {kind: sparse_categorical_crossentropy, size: mse}
  loss_weights: {kind: 1.0, size: 0.25}
  metrics: {kind: [accuracy], size: [mae]}
  optimizer: {type: adam, learning_rate: 0.01}
  batch_size: 15
  seed: 3
"""


def arrays(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 6)), rng.normal(size=(n, 4))
    return {"a": a, "b": b}, {"kind": np.argmax(a[:, :3], axis=1), "size": a.sum(axis=1, keepdims=True)}


# One backend keeps the suite short; TensorFlow passed the same test when it was written
# (its engine takes the targets by output from archspec.engine, as torch's does).
@pytest.mark.parametrize("backend", ["torch"])
def test_two_workers_follow_one_with_two_outputs(backend):
    data = {"train": arrays(90, 0), "test": arrays(31, 1)}  # batches of 15 = 8 + 7
    options = dict(backend=backend, data=data, dtype="float64", epochs=2)
    single = archspec.train(archspec.load(SPEC), **options)
    several = archspec.train(archspec.load(SPEC), workers=2, **options)
    a, b = single.step_losses, several.step_losses
    assert len(a) == len(b) == 12
    assert np.max(np.abs(a - b) / np.abs(a)) <= 1e-9
    for split in ("train", "test"):
        for key, value in single.final[split].items():
            assert several.final[split][key] == pytest.approx(value, rel=1e-9), (split, key)
    assert set(several.final["test"]) == {"loss", "kind_loss", "kind_accuracy", "size_loss", "size_mae"}
