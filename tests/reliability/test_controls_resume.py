"""A run killed (SIGKILL) while reduce-on-plateau and early stopping wait resumes to the same end.

The spec stops early after epoch 4 (best epoch 2, restored): after epoch 3 the plateau has
just halved the learning rate and early stopping waits for its second epoch without
improvement. Killed right after that epoch's checkpoint and resumed through the command
line, the run must stop at the same epoch with byte-identical weights.safetensors (the best
epoch's, read back from the checkpoint) on every backend.
"""

import json
import signal

import pytest

import archspec
from archspec.backend import BACKENDS
from reliability.support import checkpoint_step, cli

SPEC = """\
name: controls-mlp
inputs:
  x: {shape: [16]}
layers:
  - {type: dense, units: 32, activation: relu}
  - {type: dropout, rate: 0.2}
  - {type: dense, units: 1, activation: sigmoid}
training:
  loss: binary_crossentropy
  optimizer: {type: adam, learning_rate: 0.03}
  batch_size: 32
  epochs: 20
  metrics: [accuracy]
  seed: 3
  early_stopping: {monitor: validation_loss, patience: 2, restore_best: true}
  reduce_on_plateau: {monitor: validation_loss, patience: 1, factor: 0.5}
data: {dataset: binary, n_samples: 400, n_features: 16, noise: 1.0, validation_split: 0.2, test_split: 0.1}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_while_waiting_resumes_to_the_same_stop(tmp_path, backend):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    whole = archspec.train(spec, backend=backend, dtype="float64", out=tmp_path / "whole")
    assert whole.config["stopped"].startswith("early stopping after epoch 4") and whole.config["best_epoch"] == 2
    assert [row["learning_rate"] for row in whole.history] == [0.03, 0.03, 0.03, 0.015]

    run = tmp_path / "run"
    options = ("--backend", backend, "--quiet", "--dtype", "float64", "--out", str(run))
    first = cli("train", str(spec), *options, kill="checkpoint:3")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert checkpoint_step(run) == 27  # 9 steps an epoch
    state = json.loads((run / "checkpoint" / "state.json").read_text())["checkpoint"]["progress"]["controls"]
    assert state["early_stopping"]["wait"] == 1 and state["reduce_on_plateau"]["scale"] == 0.5

    resumed = cli("train", str(spec), "--backend", backend, "--quiet", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "stopped: early stopping after epoch 4" in resumed.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["stopped"] == whole.config["stopped"] and metrics["config"]["best_epoch"] == 2
    assert (run / "weights.safetensors").read_bytes() == (tmp_path / "whole" / "weights.safetensors").read_bytes()
