"""Checkpoints are written as one unit: a crash at any instant leaves a complete one.

An in-process trace records the run folder before every file-system operation of a
checkpoint write (each temporary file, fsync, rename, folder fsync and deletion), which are
exactly the states a SIGKILL can leave behind; every one of them must load and resume to the
uninterrupted run's weights, bit for bit. Also: a full disk loses nothing, the checkpoint's
contents, and resuming a checkpoint of one backend on another.
"""

import errno
import json
import os
import pathlib
import shutil
import tempfile
import types

import numpy as np
import pytest

import archspec
import archspec.training.checkpoints as checkpoint_module
import archspec.weights as weights_module
from archspec.backend import BACKENDS
from archspec.errors import CheckpointError
from archspec.training.checkpoints import read_checkpoint
from reliability.support import (
    CHECKPOINT_EVERY,
    STEPS,
    assert_bit_identical,
    checkpoint_step,
    interrupted_run,
    write_spec,
)


class _Tracer:
    """Copies ``run`` into ``snapshots/NN`` before each traced file-system operation."""

    def __init__(self, run, snapshots):
        self.run, self.snapshots, self.operations = run, snapshots, []

    def before(self, name, function):
        def traced(*args, **kwargs):
            self.operations.append(name)
            shutil.copytree(self.run, self.snapshots / f"{len(self.operations):02d}-{name}")
            return function(*args, **kwargs)

        return traced


def test_a_crash_at_any_instant_of_a_checkpoint_write_leaves_a_complete_checkpoint(tmp_path, monkeypatch):
    spec = write_spec(tmp_path)
    run, snapshots = tmp_path / "run", tmp_path / "snapshots"
    tracer = _Tracer(run, snapshots)
    original_write = checkpoint_module.write_checkpoint
    calls = []

    def write_checkpoint(*args, **kwargs):
        calls.append(1)
        if len(calls) != 3:  # trace the 3rd write (step 12 replacing step 8)
            return original_write(*args, **kwargs)
        traced_os = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os) if not name.startswith("__")})
        traced_os.replace = tracer.before("replace", os.replace)
        traced_os.fsync = tracer.before("fsync", os.fsync)
        traced_tempfile = types.SimpleNamespace(mkstemp=tracer.before("mkstemp", tempfile.mkstemp))
        with monkeypatch.context() as patch:
            patch.setattr(weights_module, "os", traced_os)  # the atomic writes
            patch.setattr(weights_module, "tempfile", traced_tempfile)
            patch.setattr(pathlib.Path, "unlink", tracer.before("unlink", pathlib.Path.unlink))
            result = original_write(*args, **kwargs)
        shutil.copytree(run, snapshots / f"{len(tracer.operations) + 1:02d}-done")
        return result

    monkeypatch.setattr(checkpoint_module, "write_checkpoint", write_checkpoint)
    archspec.train(spec, backend="torch", dtype="float64", out=run, checkpoint_every=CHECKPOINT_EVERY)
    monkeypatch.undo()
    assert tracer.operations.count("replace") == 3 and tracer.operations.count("unlink") == 2
    assert len(tracer.operations) >= 14, tracer.operations

    # Each state resumes to the uninterrupted run's weights of step 20 (the end of the run is
    # covered by the kill tests; step 20 keeps this test fast).
    steps = {}
    for snapshot in sorted(snapshots.iterdir()):
        steps[snapshot.name] = checkpoint_step(snapshot)
        assert steps[snapshot.name] in (2 * CHECKPOINT_EVERY, 3 * CHECKPOINT_EVERY), (snapshot.name, steps)
        archspec.train(spec, backend="torch", resume=snapshot, max_steps=20)
        assert checkpoint_step(snapshot) == 20
        assert_bit_identical(
            snapshot, "torch", "float64", f"resumed from the state before {snapshot.name}", max_steps=20
        )
    # The old checkpoint until state.json is replaced, the new one from then on.
    flips = [name for name, step in steps.items() if step == 3 * CHECKPOINT_EVERY]
    assert flips and all(name > max(n for n, s in steps.items() if s == 2 * CHECKPOINT_EVERY) for name in flips)


def test_a_full_disk_during_a_checkpoint_loses_nothing(tmp_path, monkeypatch):
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    original_replace = os.replace
    renames = []

    def replace(source, target):
        renames.append(target)
        if len(renames) == 8:  # the optimizer file of the 3rd checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(
        CheckpointError,
        match="cannot write the checkpoint .No space left on device.; "
        "the last complete checkpoint, if any, is unchanged",
    ):
        archspec.train(spec, backend="torch", dtype="float32", out=run, checkpoint_every=CHECKPOINT_EVERY)
    monkeypatch.undo()
    assert checkpoint_step(run) == 2 * CHECKPOINT_EVERY
    assert not [p for p in (run / "checkpoint").iterdir() if p.name.endswith(".tmp")]
    archspec.train(spec, backend="torch", resume=run)
    assert_bit_identical(run, "torch", "float32")


def test_the_checkpoint_holds_weights_optimizer_state_and_progress(tmp_path):
    run = interrupted_run(tmp_path, crash_after=13)
    files = sorted(p.name for p in (run / "checkpoint").iterdir())
    assert files == ["optimizer.000003.safetensors", "state.json", "weights.000003.safetensors"]
    document = json.loads((run / "checkpoint" / "state.json").read_text())
    state = document["checkpoint"]
    assert state["progress"]["epoch"] == 0 and state["progress"]["position"] == 12 and state["progress"]["step"] == 12
    assert state["progress"]["samples_seen"] == 12 * 32 and len(state["progress"]["step_losses"]) == 12
    assert state["backend"] == "torch" and state["dtype"] == "float64"
    assert state["run"] == {"epochs": 4, "max_steps": None, "checkpoint_every": CHECKPOINT_EVERY}
    assert state["spec_hash"] == weights_module.spec_hash(archspec.load(tmp_path / "spec.yaml"))
    checkpoint = read_checkpoint(run)
    # Batch-norm moving statistics are weights; Adam keeps m and v for every trainable parameter.
    assert "batch_norm_1.moving_variance" in checkpoint.weights
    assert sorted(checkpoint.optimizer) == sorted(
        f"{name}/{slot}" for name in checkpoint.weights if "moving" not in name for slot in ("m", "v")
    )
    # The weights file is an ordinary weights file.
    model = archspec.compile(tmp_path / "spec.yaml", backend="tensorflow", dtype="float64")
    archspec.load_weights(model, run / "checkpoint" / "weights.000003.safetensors")
    assert all(np.array_equal(model.get_weights()[k], v) for k, v in checkpoint.weights.items())


def test_an_epoch_end_checkpoint_keeps_the_history(tmp_path):
    spec = write_spec(tmp_path)
    result = archspec.train(spec, backend="torch", epochs=2, out=tmp_path / "run")
    state = read_checkpoint(tmp_path / "run").state
    assert (state.progress.epoch, state.progress.position, state.progress.step) == (2, 0, 30)
    assert state.run.checkpoint_every is None
    assert [row["loss"] for row in state.progress.history] == [row["loss"] for row in result.history]
    assert state.progress.step_losses == result.step_losses.tolist()
    # Resuming a finished run trains no further and reports the same.
    again = archspec.train(spec, backend="torch", resume=tmp_path / "run")
    assert again.steps == 30 and [r["loss"] for r in again.history] == [r["loss"] for r in result.history]
    assert again.final == result.final


def test_max_steps_checkpoints_mid_epoch_and_a_longer_run_continues(tmp_path):
    spec = write_spec(tmp_path)
    short = archspec.train(spec, backend="torch", dtype="float64", max_steps=22, out=tmp_path / "run")
    assert short.steps == 22 and [row["epoch"] for row in short.history] == [1, 2]
    state = read_checkpoint(tmp_path / "run").state
    assert (state.progress.epoch, state.progress.position, state.progress.step) == (1, 7, 22)
    assert len(state.progress.history) == 1  # the partial epoch is reported, not checkpointed
    archspec.train(spec, backend="torch", resume=tmp_path / "run", max_steps=STEPS)
    assert_bit_identical(tmp_path / "run", "torch", "float64")


# Every backend with the first of the registry (torch), both ways.
@pytest.mark.parametrize(
    "first, second", [pair for other in BACKENDS[1:] for pair in ((BACKENDS[0], other), (other, BACKENDS[0]))]
)
def test_a_checkpoint_resumes_on_the_other_backend_within_float64_parity(tmp_path, first, second):
    spec = write_spec(tmp_path)
    run = interrupted_run(tmp_path, backend=first, dtype="float64", crash_after=25)  # checkpoint at step 24
    resumed = archspec.train(spec, backend=second, resume=run)
    uninterrupted = archspec.train(spec, backend=first, dtype="float64")
    a, b = resumed.step_losses, uninterrupted.step_losses
    assert len(a) == len(b) == STEPS
    assert np.array_equal(a[:24], b[:24])  # the steps before the checkpoint are the first backend's own
    relative = np.abs(a - b) / np.abs(b)
    assert relative.max() <= 1e-9, f"step {int(np.argmax(relative))}: relative difference {relative.max():.3g}"
    wa, wb = resumed.model.get_weights(), uninterrupted.model.get_weights()
    for name in wb:
        assert np.abs(wa[name] - wb[name]).max() <= 1e-8 * max(1.0, np.abs(wb[name]).max()), name
