"""The progress bar shows the learning rate and, with early stopping, its best value so far."""

import numpy as np

import archspec
from archspec.training import progress

SPEC = """\
name: bar
inputs: {x: {shape: [4]}}
layers: [{type: dense, units: 3, activation: softmax}]
training:
  loss: sparse_categorical_crossentropy
  optimizer: {type: sgd, learning_rate: 0.25}
  warmup_steps: 4
  batch_size: 8
  epochs: 3
  early_stopping: {monitor: validation_loss, patience: 5}
"""


def test_the_bar_shows_rate_and_best(monkeypatch, capsys):
    monkeypatch.setattr(progress.ProgressBar, "due", lambda self: self.enabled)  # every step
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)
    result = archspec.train(SPEC, backend="torch", data={"train": (x, y), "validation": (x, y)}, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 12 and "lr 0 " in lines[0] and "lr 0.125 " in lines[2] and "lr 0.25 " in lines[-1]
    assert "best" not in lines[3]  # no epoch has ended yet
    best = result.history[0]["validation_loss"]
    assert f"best validation_loss {best:.4f}" in lines[4]
