"""Early stopping and reduce-on-plateau: what happens after every epoch, once for every backend.

Both watch one history key (``monitor``) at the end of every complete epoch, as Keras'
``EarlyStopping`` and ``ReduceLROnPlateau`` callbacks do, line for line (their Keras 3
``on_epoch_end``). Their whole state is a small dict of numbers (:meth:`state`), saved in
every checkpoint, so a resumed run makes the same decisions as one never interrupted.

An epoch *improves* on ``best`` when (``min_delta`` >= 0)

    mode min:  value < best - min_delta          mode max:  value > best + min_delta

and ``best`` starts at +infinity (min) or -infinity (max); ``None`` stands for it in the state.
"""

from __future__ import annotations

import math
from typing import Any

HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "auc")
"""A monitored key ending in one of these improves upwards when ``mode`` is ``auto``."""


def higher_is_better(monitor: str, mode: str) -> bool:
    """Whether ``monitor`` improves upwards under ``mode`` (``auto``, ``min`` or ``max``)."""
    if mode == "auto":
        return monitor.endswith(HIGHER_IS_BETTER)
    return mode == "max"


class _Watch:
    def __init__(self, options: Any):
        self.monitor: str = options.monitor
        self.maximize = higher_is_better(options.monitor, options.mode)
        self.min_delta: float = float(options.min_delta)
        self.patience: int = int(options.patience)
        self.best: float | None = None
        self.wait = 0

    def improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.maximize:
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def read(self, row: dict[str, float]) -> float:
        if self.monitor not in row:
            raise KeyError(self.monitor)
        return float(row[self.monitor])


class EarlyStopper(_Watch):
    """Keras' EarlyStopping after epoch ``epoch`` (0-based) with the epoch's history ``row``:

    wait += 1
    improved:                          best = value, best_epoch = epoch, wait = 0
    otherwise, wait >= patience and epoch > 0:   stop (stopped_epoch = epoch)
    """

    def __init__(self, options: Any):
        super().__init__(options)
        self.restore_best: bool = bool(options.restore_best)
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None

    def update(self, epoch: int, row: dict[str, float]) -> tuple[bool, bool]:
        """(improved, stop) after epoch ``epoch``."""
        value = self.read(row)
        self.wait += 1
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return False, True
        return False, False

    def reason(self) -> str:
        """Why training stopped, in words."""
        direction = "above" if self.maximize else "below"
        assert self.stopped_epoch is not None and self.best_epoch is not None
        return (
            f"early stopping after epoch {self.stopped_epoch + 1}: {self.monitor} did not go {direction} "
            f"the best ({self.best!r} at epoch {self.best_epoch + 1}) by more than {self.min_delta} "
            f"for {self.wait} epoch(s) (patience {self.patience})"
        )

    def state(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]


class PlateauReducer(_Watch):
    """Keras' ReduceLROnPlateau after an epoch; the learning rate is multiplied by ``scale``
    (``archspec.definitions.schedules.step_rate``):

        in cooldown (cooldown_left > 0):   cooldown_left -= 1, wait = 0
        improved:                          best = value, wait = 0
        otherwise, not in cooldown:        wait += 1; when wait >= patience and the next
                                           step's rate > min_lr: scale *= factor,
                                           cooldown_left = cooldown, wait = 0
    """

    def __init__(self, options: Any):
        super().__init__(options)
        self.factor: float = float(options.factor)
        self.cooldown: int = int(options.cooldown)
        self.min_lr: float = float(options.min_lr)
        self.cooldown_left = 0
        self.scale = 1.0

    def update(self, row: dict[str, float], next_rate: float) -> bool:
        """Whether the rate was reduced; ``next_rate``: the next step's rate as things stand."""
        value = self.read(row)
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.improves(value):
            self.best, self.wait = value, 0
            return False
        if self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience and next_rate > self.min_lr:
                self.scale *= self.factor
                self.cooldown_left = self.cooldown
                self.wait = 0
                return True
        return False

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left, "scale": self.scale}

    def load(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.cooldown_left, self.scale = state["cooldown_left"], state["scale"]


def history_keys(outputs: list[tuple[str, list[str]]], splits: tuple[str, ...]) -> list[str]:
    """The keys of an epoch's history row, with every split in ``splits`` evaluated.

    ``outputs``: ``(prefix, metrics)`` of every output: the prefix is ``""`` for the only
    output, ``"{output}_"`` with several. The keys: ``loss`` (the mean step loss) and
    ``learning_rate`` (the epoch's last step's); ``train_{prefix}{metric}`` (with several
    outputs also ``train_{prefix}loss``); for ``validation`` and ``test``: ``{split}_loss``,
    with several outputs ``{split}_{prefix}loss``, and ``{split}_{prefix}{metric}``.
    ``epoch``, ``steps`` and ``seconds`` are there too but are not monitored.
    """
    several = len(outputs) > 1
    keys = ["loss", "learning_rate"]
    for split in ("train", "validation", "test"):
        if split not in splits:
            continue
        if split != "train":
            keys.append(f"{split}_loss")
        for prefix, metrics in outputs:
            if several:
                keys.append(f"{split}_{prefix}loss")
            keys += [f"{split}_{prefix}{metric}" for metric in metrics]
    return keys
