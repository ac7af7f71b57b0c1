"""Evaluation metrics, computed once in numpy from a model's outputs.

The trainer calls :func:`compute_metrics` on the probabilities a backend produced,
so a metric can never differ between backends by its own implementation.

Classification conventions:

* predicted class: ``argmax`` over classes (first maximum on ties) for ``multiclass``;
  ``probability > 0.5`` for ``binary`` (as Keras' ``BinaryAccuracy``).
* ``precision``, ``recall``, ``f1``: for ``binary``, of the positive class 1; for
  ``multiclass``, the unweighted mean over all C classes of the per-class values.
  A ratio whose denominator is 0 counts as 0: a class never predicted has precision 0,
  a class never present has recall 0, and f1 = 2 tp / (2 tp + fp + fn) is 0 when tp = 0.
* ``auc``: area under the ROC curve, exact, ties counting one half (as sklearn's
  ``roc_auc_score``); for ``multiclass``, the mean one-vs-rest AUC over the classes that
  have both positive and negative samples. Undefined (NaN) when no class has both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archspec.errors import DataError, UsageError
from archspec.losses import mean_absolute_error, mean_squared_error

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
REGRESSION_METRICS = ("mse", "mae")
TASKS = ("multiclass", "binary", "regression")


def compute_metrics(
    names: Sequence[str], probabilities: np.ndarray, targets: np.ndarray, task: str
) -> dict[str, float]:
    """Metric values by name.

    probabilities: (N, C) for ``multiclass``; (N,) or (N, 1) for ``binary``; any shape
    for ``regression`` (the predictions).
    targets: int labels (N,) or one-hot (N, C) for ``multiclass``; 0/1 of shape (N,) or
    (N, 1) for ``binary``; the shape of ``probabilities`` for ``regression``.
    """
    if task not in TASKS:
        raise UsageError(f"expected a task among {list(TASKS)}, received {task!r}")
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise UsageError(f"for a {task} task, expected metrics among {list(allowed)}, received {unknown}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 0 or len(probabilities) == 0:
        raise DataError(f"expected a non-empty batch of outputs, received shape {probabilities.shape}")
    if task == "regression":
        return _regression_metrics(names, probabilities, np.asarray(targets, dtype=np.float64))
    if task == "binary":
        scores, true = _binary_inputs(probabilities, np.asarray(targets))
        predicted = (scores > 0.5).astype(np.int64)
        classes = [1]
        class_scores = {1: scores}
    else:
        predicted, true = _multiclass_inputs(probabilities, np.asarray(targets))
        classes = list(range(probabilities.shape[1]))
        class_scores = {c: probabilities[:, c] for c in classes}
    results = {}
    for name in names:
        if name == "accuracy":
            results[name] = float(np.mean(predicted == true))
        elif name == "auc":
            aucs = [roc_auc(class_scores[c], true == c) for c in classes]
            defined = [value for value in aucs if not np.isnan(value)]
            results[name] = float(np.mean(defined)) if defined else float("nan")
        else:
            results[name] = float(np.mean([_per_class(name, predicted == c, true == c) for c in classes]))
    return results


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Exact ROC AUC by ranks (Mann-Whitney U); NaN if either class is absent.

        AUC = (sum of the ranks of the positives - P (P + 1) / 2) / (P * Q)

    with 1-based ranks of ``scores`` in ascending order, tied scores sharing their mean
    rank, P positives and Q negatives. Equal to the trapezoidal area under the ROC curve.
    """
    positive = np.asarray(positive, dtype=bool)
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2
    rank_sum = mean_rank[inverse.reshape(-1)][positive].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def _per_class(name: str, predicted: np.ndarray, actual: np.ndarray) -> float:
    true_positive = int(np.sum(predicted & actual))
    denominator = {
        "precision": int(np.sum(predicted)),
        "recall": int(np.sum(actual)),
        "f1": int(np.sum(predicted) + np.sum(actual)),  # = 2 tp + fp + fn
    }[name]
    numerator = 2 * true_positive if name == "f1" else true_positive
    return numerator / denominator if denominator else 0.0


def _binary_inputs(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if probabilities.ndim not in (1, 2) or probabilities.size != len(probabilities):
        raise DataError(f"binary metrics expected probabilities (N,) or (N, 1), received shape {probabilities.shape}")
    if targets.size != len(probabilities) or not np.isin(targets, (0, 1)).all():
        raise DataError(
            f"binary metrics expected {len(probabilities)} targets in {{0, 1}}, "
            f"received shape {targets.shape} with values {np.unique(targets)[:5]}"
        )
    return probabilities.reshape(-1), targets.reshape(-1).astype(np.int64)


def _multiclass_inputs(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if probabilities.ndim != 2:
        raise DataError(
            f"multiclass metrics expected probabilities of shape (N, C), received shape {probabilities.shape}"
        )
    n, classes = probabilities.shape
    if targets.shape == (n, classes):
        true = np.argmax(targets, axis=1)
    elif targets.shape == (n,) and np.issubdtype(targets.dtype, np.integer):
        true = targets.astype(np.int64)
        if n and (true.min() < 0 or true.max() >= classes):
            raise DataError(f"expected labels in [0, {classes}), received [{true.min()}, {true.max()}]")
    else:
        raise DataError(
            f"multiclass metrics expected integer labels ({n},) or one-hot ({n}, {classes}), "
            f"received {targets.dtype} {targets.shape}"
        )
    return np.argmax(probabilities, axis=1), true


def _regression_metrics(names: Sequence[str], predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The mse and mae losses: means over all elements of (prediction - target)**2 and |...|."""
    formulas = {"mse": mean_squared_error, "mae": mean_absolute_error}
    return {name: formulas[name](predictions, targets) for name in names}
