"""Train one spec on every backend for a few steps and measure how far apart they end up.

Shared by ``parity_report.py`` (the README's parity table) and ``gpu_check.py`` (``make
gpu-check``). The gaps are the parity suite's: the worst per-step relative loss difference
(``archspec.comparison.relative_difference``) and the worst per-tensor relative difference of
the final weights (``tensor_relative_difference``), the worst over every pair of backends,
with the suite's bounds below.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import archspec
from archspec.backend import BACKENDS
from archspec.comparison import relative_difference, tensor_relative_difference
from archspec.data import load_dataset

# The bounds of tests/parity/trajectory.py: float64 per-step loss and final weights;
# float32 final training loss (the suite's float32 bound; weights have none in float32).
LOSS_BOUND = {"float64": 1e-9, "float32": 0.02}
WEIGHT_BOUND = {"float64": 1e-8, "float32": None}


@dataclass(frozen=True)
class Trajectories:
    """One spec trained on every backend: how far apart the furthest two are, and how fast each ran."""

    dtype: str
    steps: int
    loss_gap: float
    weight_gap: float
    steps_per_second: dict[str, float]

    @property
    def within_bounds(self) -> bool:
        weight_bound = WEIGHT_BOUND[self.dtype]
        return self.loss_gap <= LOSS_BOUND[self.dtype] and (weight_bound is None or self.weight_gap <= weight_bound)


class _StepClock:
    """Times the steps after the first ``warmup`` (tracing, compilation, autotuning): it waits
    for the device at both ends (reading the loss tensor), and nowhere in between."""

    def __init__(self, warmup: int, last: int):
        self.warmup, self.last = warmup, last
        self.start: float | None = None
        self.end: float | None = None

    def on_step_end(self, step, loss) -> None:
        if step == self.warmup - 1:
            float(loss)
            self.start = time.perf_counter()
        elif step == self.last:
            float(loss)
            self.end = time.perf_counter()

    def steps_per_second(self) -> float:
        if self.start is None or self.end is None:
            return float("nan")
        return (self.last - self.warmup + 1) / (self.end - self.start)


@functools.cache
def _dataset(config: tuple, data_dir: str | None, seed: int):
    return load_dataset(dict(config), data_dir=data_dir, seed=seed)


def training_data(spec, samples: int, data_dir: str | Path | None = None) -> dict:
    """The first ``samples`` training samples of the spec's own data set (loaded once per process)."""
    config = tuple(sorted(spec.data.model_dump(mode="json", exclude_none=True).items()))
    splits = _dataset(config, None if data_dir is None else str(data_dir), spec.training.seed)
    x, y = splits.train
    return {"train": (x[:samples], y[:samples])}


def train_all(
    spec, data, *, dtype: str, steps: int, device: str | None = None, warmup: int = 0
) -> tuple[Trajectories, dict]:
    """``steps`` steps of ``spec`` on every backend (``device`` None: the spec's); returns the worst
    gaps over the pairs, the speeds (steps/s after ``warmup`` steps; NaN without) and the
    ``TrainResult`` of each backend."""
    runs, speeds = {}, {}
    for backend in BACKENDS:
        clock = _StepClock(warmup, steps - 1) if 0 < warmup < steps else None
        runs[backend] = archspec.train(
            spec,
            backend=backend,
            data=data,
            dtype=dtype,
            device=device,
            max_steps=steps,
            epochs=1000,
            evaluate_every_epoch=False,
            callbacks=[clock] if clock else None,
        )
        speeds[backend] = clock.steps_per_second() if clock else float("nan")
    weights = {backend: run.model.get_weights() for backend, run in runs.items()}
    pairs = list(itertools.combinations(BACKENDS, 2))
    result = Trajectories(
        dtype=dtype,
        steps=steps,
        loss_gap=max(
            (relative_difference(np.asarray(runs[a].step_losses), np.asarray(runs[b].step_losses)) for a, b in pairs),
            default=0.0,
        ),
        weight_gap=max(
            (tensor_relative_difference(weights[a][name], weights[b][name]) for a, b in pairs for name in weights[a]),
            default=0.0,
        ),
        steps_per_second=speeds,
    )
    return result, runs
