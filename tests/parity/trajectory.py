"""Train one spec on every registered backend and hold every pair of runs to the float64 bounds.

Shared by the training-parity files (split so that `make test`'s workers, which take whole
files, share the long cases): every per-step loss within 1e-9 relative, every final weight
tensor within 1e-8 relative (max |a - b| / max |a| per tensor), between every two backends.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from paths import mnist_dir

import archspec
from archspec.backend import BACKENDS
from archspec.comparison import tensor_relative_difference
from archspec.data import load_dataset

STEPS = 200
SUBSET = 3200  # 50 batches of 64: 200 steps cover four epochs (so reshuffling is exercised)

# An attention key bias adds the same q . b to every score of a query's row, which the softmax
# ignores: its gradient is zero up to round-off, so it stays at its initial zeros up to noise
# (~1e-12) and a relative difference between two backends' noise means nothing. It is compared
# absolutely.
NEAR_ZERO_SUFFIXES = (".key_bias",)


@functools.cache
def mnist(view: str):
    splits = load_dataset({"dataset": "mnist", "view": view}, data_dir=mnist_dir())
    (x, y), (x_test, y_test) = splits.train, splits.test
    return {"train": (x[:SUBSET], y[:SUBSET]), "test": (x_test[:500], y_test[:500])}


def with_training(spec, **changes):
    training = spec.training.model_copy(update=changes)
    return spec.model_copy(update={"training": training})


def train_all(spec, **options):
    """``spec`` trained on every backend of the registry, by backend name."""
    return {backend: archspec.train(spec, backend=backend, **options) for backend in BACKENDS}


def assert_same_trajectory(label, results, steps=STEPS):
    """Every two runs of ``results`` (backend -> TrainResult) took ``steps`` steps along the same
    float64 trajectory, and the loss went down."""
    for first, second in itertools.combinations(results, 2):
        a, b = results[first].step_losses, results[second].step_losses
        assert len(a) == len(b) == steps, f"{label}: {first} took {len(a)} steps, {second} {len(b)}, expected {steps}"
        relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
        worst = int(np.argmax(relative))
        assert relative[worst] <= 1e-9, (
            f"{label}: step {worst} loss {first} {a[worst]!r} vs {second} {b[worst]!r} "
            f"(relative {relative[worst]:.3g} > 1e-9)"
        )
        wa, wb = results[first].model.get_weights(), results[second].model.get_weights()
        for name in wa:
            if name.endswith(NEAR_ZERO_SUFFIXES):
                difference = float(np.max(np.abs(wa[name] - wb[name])))
                assert difference <= 1e-9, (
                    f"{label}: final weight {name}, {first} vs {second}, differs by {difference:.3g} (> 1e-9)"
                )
                continue
            difference = tensor_relative_difference(wa[name], wb[name])
            assert difference <= 1e-8, (
                f"{label}: final weight {name}, {first} vs {second}, differs by {difference:.3g} relative (> 1e-8)"
            )
    for backend, result in results.items():
        losses = result.step_losses
        assert losses[-1] < losses[0], (
            f"{label} [{backend}]: the loss did not go down ({losses[0]:.4f} -> {losses[-1]:.4f})"
        )
