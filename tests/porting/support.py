"""Helpers for the import tests: random weights in a Keras model (so that no bias or running
statistic stays at a value that would hide a wrong conversion)."""

from __future__ import annotations

import numpy as np


def randomize(model, seed: int = 0, variance_range: tuple[float, float] = (0.5, 1.5)) -> None:
    """Give every variable of ``model`` random values; a batch norm's moving variance is drawn
    from ``variance_range`` (positive)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "moving_variance" in variable.path:
            value = rng.uniform(*variance_range, shape)
        else:
            value = 0.3 * rng.standard_normal(shape)
        variable.assign(value.astype(variable.dtype))
