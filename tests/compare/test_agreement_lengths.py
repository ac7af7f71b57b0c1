"""Runs that stop at different steps (early stopping in float32) are compared on the steps both took."""

import numpy as np

from archspec.comparison.agreement import agreement


def test_runs_of_different_lengths_compare_their_common_steps():
    losses = {"torch": np.array([1.0, 0.5, 0.25]), "tensorflow": np.array([1.0, 0.5, 0.2, 0.1, 0.05])}
    weights = {name: {"w": np.ones(3)} for name in losses}
    found = agreement(("torch", "tensorflow"), losses, weights, {"torch": None, "tensorflow": None})
    assert found["max relative per-step loss difference"] == abs(0.25 - 0.2) / 0.25
    assert found["steps both took (torch stopped after 3, tensorflow after 5)"] == 3.0
