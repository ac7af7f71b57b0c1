"""How far every two backends' runs are apart: step losses, final weights, test predictions."""

from __future__ import annotations

import itertools

import numpy as np


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a|, |b|) elementwise (0 where both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = np.maximum(np.abs(a), np.abs(b))
    diff = np.abs(a - b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), 0.0)
    return float(rel.max()) if rel.size else 0.0


def tensor_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(max |a|, max |b|) over one tensor: how far two copies of a weight
    tensor are apart, relative to the tensor's scale (an element near zero does not blow it up)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return float(np.max(np.abs(a - b), initial=0.0)) / scale if scale > 0 else 0.0


def pair_agreement(a, b, losses, weights, predictions) -> dict[str, float]:
    """How far backend ``a``'s run is from backend ``b``'s: measure -> value."""
    # Runs that stop early (early stopping in float32) may end at different steps: compare
    # the steps both took, and say how many that is.
    common = min(len(losses[a]), len(losses[b]))
    measures = {
        "max relative per-step loss difference": relative_difference(losses[a][:common], losses[b][:common]),
        "max relative final-weight difference": max(
            (tensor_relative_difference(weights[a][name], weights[b][name]) for name in weights[a]), default=0.0
        ),
    }
    if len(losses[a]) != len(losses[b]):
        measures["steps both took"] = float(common)
    if predictions[a] is not None and predictions[b] is not None:
        measures["share of test predictions that agree"] = float(np.mean(predictions[a] == predictions[b]))
    return measures


def pair_name(a: str, b: str) -> str:
    """The key of a pair of backends in ``agreement``'s result: ``"torch vs jax"``."""
    return f"{a} vs {b}"


def agreement(backends, losses, weights, predictions) -> dict[str, dict[str, float]]:
    """Every pair of ``backends`` (in their order: torch vs tensorflow, torch vs jax, tensorflow
    vs jax) -> its measures (``pair_agreement``); empty for one backend."""
    return {
        pair_name(a, b): pair_agreement(a, b, losses, weights, predictions)
        for a, b in itertools.combinations(backends, 2)
    }
