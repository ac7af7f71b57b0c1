"""One epoch of a config on full MNIST in float32 on every registered backend: every two
backends' test accuracy within 0.5 percentage points and final training loss within 2%, and
every backend learned (float64 parity: ``parity/trajectory.py``)."""

from __future__ import annotations

import itertools

from paths import CONFIGS, mnist_dir

import archspec
from archspec.backend import BACKENDS


def assert_one_epoch_float32_agrees(config: str) -> None:
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    results = {
        backend: archspec.train(spec, backend=backend, epochs=1, dtype="float32", data_dir=mnist_dir())
        for backend in BACKENDS
    }
    accuracy = {backend: result.final["test"]["accuracy"] for backend, result in results.items()}
    loss = {backend: result.history[-1]["loss"] for backend, result in results.items()}
    for a, b in itertools.combinations(BACKENDS, 2):
        assert abs(accuracy[a] - accuracy[b]) <= 0.005, (
            f"{config}: test accuracy {a} {accuracy[a]:.4f} vs {b} {accuracy[b]:.4f}"
        )
        assert abs(loss[a] - loss[b]) / max(loss[a], loss[b]) <= 0.02, (
            f"{config}: final training loss {a} {loss[a]:.5f} vs {b} {loss[b]:.5f}"
        )
    assert all(value > 0.8 for value in accuracy.values()), f"{config}: did not learn ({accuracy})"
