"""Whether a checkpoint may be resumed by this run: same architecture, training setup and data.

A resumed run continues bit for bit as if never interrupted, so anything that would change
a single step (the spec's architecture, the training settings, the training data, arrays of
the wrong shape or dtype, progress that does not add up) is refused before training starts.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from archspec.definitions.optimizers import state_slots
from archspec.errors import CheckpointError
from archspec.graph import ModelGraph
from archspec.training.checkpoints import Checkpoint, DataFingerprint
from archspec.weights import check_weights, spec_hash

# Settings a resumed run may change: they do not alter a single step of training.
_FREE_TRAINING_KEYS = frozenset({"epochs", "device", "metrics"})


def fingerprint(x: np.ndarray, y: np.ndarray, *more: np.ndarray) -> DataFingerprint:
    """SHA-256 over the shapes, dtypes and bytes of the training arrays (and sample weights)."""
    digest = hashlib.sha256()
    for array in (x, y, *more):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data.cast("B"))
    return DataFingerprint(samples=len(x), sha256=digest.hexdigest())


def check_arrays(expected: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray], dtype: str, source: str) -> None:
    """Refuse arrays whose names, shapes or dtype differ from ``expected``, or that hold NaN or infinity."""
    check_weights(expected, arrays, source)
    for name, array in arrays.items():
        if array.dtype != np.dtype(dtype):
            raise CheckpointError(f"{source}: expected '{name}' of dtype {dtype}, received {array.dtype}")
        if not np.isfinite(array).all():
            raise CheckpointError(f"{source}: '{name}' holds NaN or infinite values")


def check_resumable(checkpoint: Checkpoint, graph: ModelGraph, training) -> None:
    """Refuse a checkpoint of another architecture or training setup, or whose arrays do not fit."""
    state, folder = checkpoint.state, checkpoint.folder
    spec = graph.spec
    if state.spec_hash != spec_hash(spec):
        raise CheckpointError(
            f"{folder}: saved from spec '{state.spec_name}' whose architecture differs from "
            f"'{spec.name}' (spec hash mismatch)"
        )
    current = training.model_dump(mode="json")
    defaults = type(training)(loss=training.loss).model_dump(mode="json")
    for key in sorted(set(current) | set(state.training)):
        if key not in state.training and current.get(key) == defaults.get(key):
            continue  # a setting newer than the checkpoint, at the value every older run had
        if key not in _FREE_TRAINING_KEYS and current.get(key) != state.training.get(key):
            raise CheckpointError(
                f"{folder}: the checkpoint was trained with {key} = {state.training.get(key)!r}, "
                f"this run has {current.get(key)!r}; resume with the same training settings"
            )
    parameters = graph.parameters
    roles: tuple[tuple[Literal["weights", "best"], dict[str, np.ndarray] | None], ...] = (
        ("weights", checkpoint.weights),
        ("best", checkpoint.best),
    )
    for role, arrays in roles:
        if arrays is not None:
            check_arrays(
                {name: p.shape for name, p in parameters.items()},
                arrays,
                state.dtype,
                str(folder / state.files[role].name),
            )
    options = {
        "lr": training.optimizer.learning_rate,
        **training.optimizer.model_dump(exclude={"type", "learning_rate"}),
    }
    slots = state_slots(training.optimizer.type, options)
    expected = {f"{name}/{slot}": p.shape for name, p in parameters.items() if p.trainable for slot in slots}
    check_arrays(expected, checkpoint.optimizer, state.dtype, str(folder / state.files["optimizer"].name))


def check_progress(checkpoint: Checkpoint, data: DataFingerprint, batch_sizes: list[int]) -> None:
    """Refuse a checkpoint of other training data, or whose progress does not add up."""
    state, folder = checkpoint.state, checkpoint.folder
    if state.data != data:
        raise CheckpointError(
            f"{folder}: the checkpoint was trained on other data ({state.data.samples} samples, "
            f"SHA-256 {state.data.sha256[:12]}...), this run has {data.samples} samples, "
            f"SHA-256 {data.sha256[:12]}..."
        )
    progress = state.progress
    per_epoch = len(batch_sizes)
    problems = [
        (progress.position < per_epoch, f"position {progress.position} within an epoch of {per_epoch} batches"),
        (
            progress.step == progress.epoch * per_epoch + progress.position,
            f"step {progress.step} after {progress.epoch} epochs and {progress.position} batches",
        ),
        (
            len(progress.step_losses) == progress.step,
            f"{len(progress.step_losses)} step losses for {progress.step} steps",
        ),
        (len(progress.history) == progress.epoch, f"{len(progress.history)} history rows for {progress.epoch} epochs"),
        (
            progress.samples_seen == progress.epoch * data.samples + sum(batch_sizes[: progress.position]),
            f"{progress.samples_seen} samples seen at step {progress.step}",
        ),
        (bool(np.isfinite(progress.step_losses).all()), "non-finite step losses"),
    ]
    for fine, what in problems:
        if not fine:
            raise CheckpointError(f"{folder}: the checkpoint's progress does not add up ({what})")
