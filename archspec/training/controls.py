"""A run's controls: the learning rate of every step, and what happens after every epoch.

The formulas are shared definitions (``archspec.definitions.schedules`` and
``archspec.definitions.controls``); this module holds one run's state of them: the
plateau's scale, early stopping's best value and wait, the best epoch's weights. All of it
goes into every checkpoint, so that a resumed run makes the same decisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archspec.definitions.controls import EarlyStopper, PlateauReducer, history_keys
from archspec.definitions.schedules import step_rate
from archspec.errors import UsageError
from archspec.spec.training import Training


class Controls:
    """The learning-rate controls and early stopping of one run (``training``: the spec's section)."""

    def __init__(self, training: Training):
        self.training = training
        self.schedule = training.schedule.model_dump()
        self.base_lr = training.optimizer.learning_rate
        self.stopper = EarlyStopper(training.early_stopping) if training.early_stopping is not None else None
        self.reducer = PlateauReducer(training.reduce_on_plateau) if training.reduce_on_plateau is not None else None
        self.best_weights: dict[str, np.ndarray] | None = None  # with restore_best: the best epoch's

    def check_monitors(self, splits: tuple[str, ...], evaluated: bool, outputs: list[tuple[str, list[str]]]) -> None:
        """Refuse a monitor that names a key this run's history will not have; ``outputs``:
        ``(prefix, metrics)`` per output (``archspec.objectives.output_keys``)."""
        keys = history_keys(outputs, splits if evaluated else ())
        for name, watch in (("early_stopping", self.stopper), ("reduce_on_plateau", self.reducer)):
            if watch is not None and watch.monitor not in keys:
                why = "" if evaluated else " (evaluate_every_epoch is off, so no split is evaluated)"
                raise UsageError(
                    f"training.{name}.monitor: expected a history key this run will have "
                    f"({', '.join(keys)}){why}, received {watch.monitor!r}"
                )

    def rate(self, step: int) -> float:
        """The learning rate of 0-based optimizer step ``step``."""
        training = self.training
        reducer = self.reducer
        return step_rate(
            self.schedule,
            self.base_lr,
            step,
            warmup_steps=training.warmup_steps,
            plateau_scale=1.0 if reducer is None else reducer.scale,
            min_lr=0.0 if reducer is None else reducer.min_lr,
        )

    @property
    def stopped(self) -> bool:
        return self.stopper is not None and self.stopper.stopped_epoch is not None

    def after_epoch(self, epoch: int, row: dict[str, float], next_step: int, weights) -> bool:
        """Update the controls with epoch ``epoch``'s history ``row``; True: stop training.
        ``weights()``: the model's weights now (read only when they are the new best)."""
        if self.reducer is not None:
            self.reducer.update(row, self.rate(next_step))
        if self.stopper is None:
            return False
        improved, stop = self.stopper.update(epoch, row)
        if improved and self.stopper.restore_best:
            self.best_weights = {name: np.array(value, copy=True) for name, value in weights().items()}
        return stop

    def reason(self) -> str | None:
        """Why training stopped early, or None."""
        return self.stopper.reason() if self.stopper is not None and self.stopped else None

    def state(self) -> dict[str, dict[str, Any]]:
        """Everything a resumed run needs (the best weights travel separately)."""
        state = {}
        if self.stopper is not None:
            state["early_stopping"] = self.stopper.state()
        if self.reducer is not None:
            state["reduce_on_plateau"] = self.reducer.state()
        return state

    def load(self, state: dict[str, dict[str, Any]], best_weights: dict[str, np.ndarray] | None) -> None:
        if self.stopper is not None and "early_stopping" in state:
            self.stopper.load(state["early_stopping"])
        if self.reducer is not None and "reduce_on_plateau" in state:
            self.reducer.load(state["reduce_on_plateau"])
        self.best_weights = best_weights
