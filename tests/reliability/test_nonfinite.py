"""A loss that turns NaN or infinite stops training with a TrainingError naming the epoch, the
step and the first layer that went non-finite; the last good checkpoint is kept.

The loss is checked where the trainer synchronises anyway (every checkpoint and epoch end),
the first bad step is then found among the step losses, and the step is replayed from the
last good state to find the first non-finite tensor of its forward pass.
"""

import math

import numpy as np
import pytest

import archspec
from archspec.backend import BACKENDS
from archspec.cli import main
from archspec.errors import TrainingError
from archspec.training.checkpoints import read_checkpoint
from archspec.training.order import batches, epoch_order
from archspec.training.preparation import load_splits
from reliability.support import DIVERGING, checkpoint_step


class LossRecorder:
    def __init__(self):
        self.losses = []

    def on_step_end(self, step, loss):
        self.losses.append(float(loss))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_run_names_step_epoch_and_layer_and_keeps_the_last_good_checkpoint(tmp_path, backend):
    recorder = LossRecorder()
    with pytest.raises(TrainingError) as caught:
        archspec.train(DIVERGING, backend=backend, out=tmp_path / "run", checkpoint_every=1, callbacks=[recorder])
    message = str(caught.value)
    first_bad = next(i for i, loss in enumerate(recorder.losses) if not math.isfinite(loss))
    assert first_bad == 2
    assert message.startswith("the training loss became nan at step 2 (epoch 1, batch 3 of 10): ")
    assert (
        "the first non-finite tensor of that step's forward pass is the pre-activation of layer 'dense_3' (dense)"
        in message
    )
    assert message.endswith(f"the last good checkpoint (step 2) is kept in {tmp_path / 'run' / 'checkpoint'}")

    checkpoint = read_checkpoint(tmp_path / "run")
    assert checkpoint.state.progress.step == 2
    assert all(np.isfinite(value).all() for value in checkpoint.weights.values())
    assert checkpoint.state.progress.step_losses == recorder.losses[:2]

    # An independent look with the framework itself: torch's own tensors for step 2's batch,
    # from the weights the step began with, are non-finite first at dense_3's pre-activation.
    import torch

    model = archspec.compile(DIVERGING, backend="torch", weights=checkpoint.weights)
    x = load_splits(model.spec, None, None).train[0].astype(np.float32)
    batch = batches(epoch_order(0, 0, len(x)), 16)[2]
    module = model.native
    module.train()
    module.set_step(2)
    names = ["dense_1:pre", "dense_1", "dense_2:pre", "dense_2", "dense_3:pre"]
    with torch.no_grad():
        tensors = module.tensors({"x": torch.from_numpy(x[batch])}, names)
    finite = [bool(torch.isfinite(tensors[name]).all()) for name in names]
    assert finite == [True, True, True, True, False]

    # Resuming the kept checkpoint meets the same wall at the same step, and keeps the checkpoint.
    with pytest.raises(TrainingError, match="at step 2 .epoch 1, batch 3 of 10.: the first non-finite"):
        archspec.train(DIVERGING, backend=backend, resume=tmp_path / "run")
    assert checkpoint_step(tmp_path / "run") == 2


def test_an_overflow_in_the_first_layer_is_found_at_step_0():
    spec = """
name: overflow
inputs: {x: {shape: [4]}}
layers:
  - {type: dense, units: 8, activation: relu, kernel_initializer: ones}
  - {type: dense, units: 3, activation: softmax}
training: {loss: sparse_categorical_crossentropy, batch_size: 8, epochs: 1}
"""
    x = np.full((16, 4), 1e38, dtype=np.float32)  # finite in float32; four of them summed are not
    y = np.arange(16) % 3
    with pytest.raises(
        TrainingError,
        match=r"at step 0 \(epoch 1, batch 1 of 2\): the first non-finite tensor of that "
        r"step's forward pass is the pre-activation of layer 'dense_1' \(dense\); "
        r"no checkpoint was written",
    ):
        archspec.train(spec, backend="torch", data=(x, y))


def test_a_loss_that_overflows_by_itself_is_named_so(tmp_path):
    spec = DIVERGING.replace("binary_crossentropy", "mse").replace("sigmoid", "linear")
    spec = spec.replace("1.0e+6, momentum: 0.9", "0.5").replace(
        "units: 16, activation: relu}\n  - {type: dense, units: 16", "units: 16"
    )
    spec = spec.replace("dataset: binary", "dataset: regression")
    with pytest.raises(
        TrainingError, match="every layer output of that step is finite, so the loss computation itself overflowed"
    ):
        archspec.train(spec, backend="torch", epochs=5)


def test_the_cli_reports_a_diverging_run_in_one_line(tmp_path, capsys):
    path = tmp_path / "diverging.yaml"
    path.write_text(DIVERGING)
    assert main(["train", str(path), "--quiet", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archspec: error: the training loss became nan at step 2")
