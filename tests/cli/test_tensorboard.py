"""``--logdir``: TensorBoard event files read back with TensorBoard's own EventAccumulator.

A run logs every step's loss, learning rate and gradient norm, every history value of every
epoch, the final evaluation and the spec as text, without importing the other framework;
``compare --logdir`` writes one run per backend.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from archspec.backend import BACKENDS, REGISTRY
from archspec.definitions.schedules import step_rate
from archspec.training.checkpoints import read_checkpoint

SPEC = """\
name: logged
inputs: {x: {shape: [8]}}
layers:
  - {type: dense, units: 16, activation: relu}
  - {type: dense, units: 1, activation: sigmoid}
training:
  loss: binary_crossentropy
  optimizer: {type: sgd, learning_rate: 0.2, momentum: 0.5}
  schedule: {type: step, step_size: 10, gamma: 0.5}
  warmup_steps: 6
  clip_norm: 0.5
  batch_size: 32
  epochs: 3
  metrics: [accuracy, auc]
  seed: 1
data: {dataset: binary, n_samples: 300, n_features: 8, validation_split: 0.2, test_split: 0.2}
"""

# The other backends' framework packages (torch, tensorflow, flax; TensorFlow itself imports jax
# when it is installed, so the JAX backend is recognised by flax).
OTHER = {
    backend: tuple(REGISTRY[other].framework.partition(".")[0] for other in BACKENDS if other != backend)
    for backend in BACKENDS
}


def read(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def values(events: EventAccumulator, tag: str) -> tuple[list[int], np.ndarray]:
    scalars = events.Scalars(tag)
    return [s.step for s in scalars], np.array([s.value for s in scalars])


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_logdir_holds_every_value(tmp_path, backend):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    logs, run = tmp_path / "logs", tmp_path / "run"
    code = (
        "import json, sys; from archspec.cli import main; "
        f"code = main(['train', {str(spec)!r}, '--backend', {backend!r}, '--dtype', 'float64', '--quiet', "
        f"'--out', {str(run)!r}, '--logdir', {str(logs)!r}]); "
        f"print(json.dumps([m for m in {OTHER[backend]!r} if m in sys.modules])); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [], f"a {backend} run imported the other framework"
    assert f"wrote TensorBoard event files to {logs}" in done.stdout

    events = read(logs)
    progress = read_checkpoint(run).state.progress
    history = json.loads((run / "metrics.json").read_text())["history"]
    steps = len(progress.step_losses)
    assert steps == 18  # 180 training samples: 6 steps an epoch

    x, losses = values(events, "step/loss")
    assert x == list(range(1, steps + 1))
    np.testing.assert_allclose(losses, progress.step_losses, rtol=1e-6)  # event files hold float32
    _, rates = values(events, "step/learning_rate")
    schedule = {"type": "step", "step_size": 10, "gamma": 0.5}
    expected = [step_rate(schedule, 0.2, s, warmup_steps=6) for s in range(steps)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    assert rates[0] == 0.0 and rates[6] == pytest.approx(0.2) and rates[10] == pytest.approx(0.1)
    _, norms = values(events, "step/gradient_norm")
    assert len(norms) == steps and (norms > 0).all() and (norms > 0.5).any()  # some steps were clipped

    assert len(history) == 3
    for key in history[0]:
        if key in ("epoch", "steps", "seconds"):
            continue
        x, logged = values(events, f"epoch/{key}")
        assert x == [1, 2, 3], key
        np.testing.assert_allclose(logged, [row[key] for row in history], rtol=1e-6, err_msg=key)
    assert {"epoch/validation_auc", "epoch/test_accuracy", "epoch/train_accuracy"} <= set(events.Tags()["scalars"])
    final = json.loads((run / "metrics.json").read_text())["final"]
    _, test_loss = values(events, "final/test_loss")
    assert test_loss[0] == pytest.approx(final["test"]["loss"], rel=1e-6)

    spec_text = events.Tensors("spec")[0].tensor_proto.string_val[0].decode()
    assert "name: logged" in spec_text and "warmup_steps: 6" in spec_text


def test_compare_logdir_writes_one_run_per_backend(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "archspec", "compare", str(spec), "--max-steps", "8", "--quiet"]
    done = subprocess.run([*command, "--logdir", str(logs)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(path.name for path in logs.iterdir()) == sorted(BACKENDS)
    curves = {backend: values(read(logs / backend), "step/loss") for backend in BACKENDS}
    first = BACKENDS[0]
    for backend in BACKENDS:
        assert curves[backend][0] == list(range(1, 9)), backend
        np.testing.assert_allclose(curves[backend][1], curves[first][1], rtol=1e-4, err_msg=backend)  # float32 runs
