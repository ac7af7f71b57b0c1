"""What the reliability tests share: a small spec with dropout and batch norm, runs, folders."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import archspec

HERE = Path(__file__).resolve().parent
KILLER = HERE / "killer.py"

# 480 training samples in batches of 32: 15 steps an epoch, 60 steps in all.
SPEC = """\
name: reliability-mlp
inputs:
  x: {shape: [16]}
layers:
  - {type: dense, units: 32, activation: relu}
  - {type: batch_norm}
  - {type: dropout, rate: 0.3}
  - {type: dense, units: 16, activation: tanh}
  - {type: dense, units: 1, activation: sigmoid}
training:
  loss: binary_crossentropy
  optimizer: {type: adam, learning_rate: 0.01}
  batch_size: 32
  epochs: 4
  metrics: [accuracy]
  seed: 3
data: {dataset: binary, n_samples: 600, n_features: 16, validation_split: 0.1, test_split: 0.1}
"""

STEPS = 60
CHECKPOINT_EVERY = 4

# Its loss turns NaN at step 2 (learning rate 1e6), first in dense_3's pre-activation.
DIVERGING = """\
name: diverging
inputs: {x: {shape: [8]}}
layers:
  - {type: dense, units: 16, activation: relu}
  - {type: dense, units: 16, activation: relu}
  - {type: dense, units: 1, activation: sigmoid}
training: {loss: binary_crossentropy, optimizer: {type: sgd, learning_rate: 1.0e+6, momentum: 0.9},
           batch_size: 16, epochs: 2, seed: 0}
data: {dataset: binary, n_samples: 200, n_features: 8}
"""


def write_spec(folder: Path, text: str = SPEC) -> Path:
    path = Path(folder) / "spec.yaml"
    path.write_text(text)
    return path


@functools.cache
def uninterrupted_weights(backend: str, dtype: str, max_steps: int | None = None) -> bytes:
    """weights.safetensors of an uninterrupted run of SPEC, after ``max_steps`` steps or all
    (computed once per session)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        spec = write_spec(Path(folder))
        archspec.train(spec, backend=backend, dtype=dtype, max_steps=max_steps, out=Path(folder) / "run")
        return (Path(folder) / "run" / "weights.safetensors").read_bytes()


def assert_bit_identical(
    run_folder: Path, backend: str, dtype: str, label: str = "", max_steps: int | None = None
) -> None:
    """The run's final weights.safetensors equals the uninterrupted run's, byte for byte."""
    from safetensors.numpy import load

    expected = uninterrupted_weights(backend, dtype, max_steps)
    actual = (Path(run_folder) / "weights.safetensors").read_bytes()
    if actual != expected:
        a, b = load(actual), load(expected)
        differing = [name for name in b if name not in a or not np.array_equal(a[name], b[name])]
        raise AssertionError(f"{label}: final weights differ from the uninterrupted run in {differing or 'metadata'}")


def folder_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (and the set of folders)."""
    digest = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = str(path.relative_to(folder))
        digest[relative] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return digest


def checkpoint_step(run_folder: Path) -> int | None:
    """The step of the checkpoint in ``run_folder`` (None without one); reads without changing it."""
    from archspec.errors import CheckpointError
    from archspec.training.checkpoints import read_checkpoint

    try:
        return read_checkpoint(run_folder).state.progress.step
    except CheckpointError:
        return None


def cli(*args: str, kill: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``archspec ARGS`` in a fresh interpreter; ``kill``: ``OP:N`` makes it SIGKILL itself
    (see killer.py)."""
    command = [sys.executable, str(KILLER), kill or "none", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_environment())


def start_cli(*args: str) -> subprocess.Popen:
    command = [sys.executable, str(KILLER), "none", *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_environment())


def kill_when(process: subprocess.Popen, ready, delay: float, timeout: float = 120) -> bool:
    """SIGKILL ``process`` ``delay`` seconds after ``ready()`` turns true; False if it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the run never became ready to be killed")
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return True


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return environment


class Crash(Exception):
    """Stands in for a crash in-process: raised from a callback, nothing catches it."""


class CrashAtStep:
    """A callback that raises Crash after optimizer step ``step`` (0-based) has run."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, step, loss):
        if step == self.step:
            raise Crash(f"crash after step {step}")


def interrupted_run(folder: Path, backend: str = "torch", dtype: str = "float64", crash_after: int = 13) -> Path:
    """A run of SPEC in ``folder/run`` that crashed after step ``crash_after``; its checkpoint is the
    last multiple of CHECKPOINT_EVERY before (step 12 by default)."""
    import pytest

    spec = write_spec(folder)
    run = Path(folder) / "run"
    with pytest.raises(Crash):
        archspec.train(
            spec,
            backend=backend,
            dtype=dtype,
            out=run,
            checkpoint_every=CHECKPOINT_EVERY,
            callbacks=[CrashAtStep(crash_after)],
        )
    return run
