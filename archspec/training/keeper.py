"""The last good state of a run: host copies checked finite, and (rank 0) its checkpoint on disk.

A state is "good" when every step loss so far, every weight and every optimizer slot is
finite. The loop captures one at every checkpoint and epoch end; a divergence is then
located by replaying from it, and the error says which checkpoint was kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from archspec.errors import TrainingError
from archspec.training import checkpoints
from archspec.training.checkpoints import CheckpointState, DataFingerprint, Progress, RunSettings
from archspec.training.divergence import Snapshot, first_nonfinite_parameter
from archspec.version import __version__
from archspec.weights import spec_hash


class Keeper:
    """Captures good states and writes them to ``out/checkpoint`` (when ``writer``)."""

    good: Snapshot  # the last good state (``start`` sets the first)

    def __init__(
        self,
        spec,
        backend: str,
        dtype: Literal["float32", "float64"],
        run: RunSettings,
        data: DataFingerprint | None,
        out: Path | None,
        writer: bool,
    ):
        self.spec, self.backend, self.dtype, self.run, self.data = spec, backend, dtype, run, data
        self.out, self.writer = out, writer
        self.last_checkpoint: Path | None = None  # the folder last written or resumed from

    def start(self, step: int, model, engine, checkpoint: checkpoints.Checkpoint | None) -> None:
        """The state training starts from: the resumed checkpoint's, else the initial one."""
        if checkpoint is not None:
            self.good = Snapshot(step, dict(checkpoint.weights), dict(checkpoint.optimizer))
            self.last_checkpoint = checkpoint.folder
        else:
            self.good = Snapshot(0, _copies(model.get_weights()), _copies(engine.optimizer_state()))

    def capture(self, step: int, steps_per_epoch: int, model, engine) -> Snapshot:
        """Check the weights and optimizer state after ``step`` steps and keep host copies of
        them as the last good state (the step losses must have been checked already)."""
        weights = _copies(model.get_weights())
        optimizer = _copies(engine.optimizer_state())
        bad = first_nonfinite_parameter(weights) or first_nonfinite_parameter(optimizer)
        if bad is not None:
            raise TrainingError(
                f"after step {step - 1} (epoch {(step - 1) // steps_per_epoch + 1}) '{bad}' holds NaN "
                f"or infinite values although every training loss so far was finite; {self.kept()}"
            )
        self.good = Snapshot(step, weights, optimizer)
        return self.good

    def write(
        self,
        snapshot: Snapshot,
        *,
        epoch: int,
        position: int,
        samples_seen: int,
        history,
        step_losses,
        controls: dict | None = None,
        best: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write ``snapshot`` to ``out/checkpoint``, all of it or nothing (rank 0 only); the run
        stands at batch ``position`` of epoch ``epoch`` (0-based)."""
        if self.out is None or self.data is None:  # a run folder comes with its data's fingerprint
            return
        if not self.writer:
            self.last_checkpoint = checkpoints.checkpoint_folder(self.out)
            return
        progress = Progress(
            epoch=epoch,
            position=position,
            step=snapshot.step,
            samples_seen=samples_seen,
            history=[dict(row) for row in history],
            step_losses=list(step_losses),
            controls=dict(controls or {}),
        )
        state = CheckpointState(
            archspec_version=__version__,
            spec_name=self.spec.name,
            spec_hash=spec_hash(self.spec),
            backend=self.backend,
            dtype=self.dtype,
            training=self.spec.training.model_dump(mode="json"),
            run=self.run,
            data=self.data,
            progress=progress,
        )
        # Looked up in its module at every call: the crash tests replace write_checkpoint there.
        self.last_checkpoint = checkpoints.write_checkpoint(self.out, state, snapshot.weights, snapshot.optimizer, best)

    def kept(self) -> str:
        """Where the last good state is, for an error message."""
        if self.last_checkpoint is not None:
            return f"the last good checkpoint (step {self.good.step}) is kept in {self.last_checkpoint}"
        if self.out is not None:
            return "no checkpoint had been written yet (checkpoint_every writes them more often)"
        return "no checkpoint was written (train with out=DIR to keep one)"


def _copies(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # A CPU tensor's .numpy() shares its memory: the snapshot must not follow later updates.
    return {name: np.array(value, copy=True) for name, value in arrays.items()}
