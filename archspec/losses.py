"""Losses of model outputs in float64 numpy: the trainer's inference-mode loss and the regression metrics.

This is production code with its own implementation, not an import of the numpy reference:
the reference (``archspec.reference.losses``) is the witness that the backends' training
losses are held to, and ``tests/reference/test_losses.py`` holds this module to it as well.
Computed from the logits when the head has them, so that evaluation never takes the log of
a probability that rounded to 0 or 1; otherwise from probabilities clipped to
[EPSILON, 1 - EPSILON] (rows renormalised first for the categorical losses), as Keras does.
"""

from __future__ import annotations

import numpy as np

from archspec.definitions.constants import EPSILON
from archspec.errors import DataError, UsageError

LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mse", "mae")


def loss_value(
    name: str, output: np.ndarray, target: np.ndarray, *, from_logits: bool, sample_weight: np.ndarray | None = None
) -> float:
    """The mean loss ``name`` of a batch: ``output`` (N, ...) is pre-activation when ``from_logits``.

    ``target``: integer labels (N,) for ``sparse_categorical_crossentropy``, else the shape of
    ``output`` ((N,) and (N, 1) are interchangeable). ``sample_weight`` (N,): the weighted
    loss ``sum_n w[n] * l[n] / N`` (Keras' normalisation), ``l[n]`` the loss of sample n
    alone (for mse and mae: the mean over its features).
    """
    if sample_weight is not None:
        output = np.asarray(output, dtype=np.float64)
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != output.shape[:1]:
            raise DataError(f"expected one sample weight per output {output.shape[:1]}, received shape {weights.shape}")
        per_sample = _per_sample(name, output, target, from_logits)
        return float(np.sum(weights * per_sample) / len(output))
    if name not in LOSSES:
        raise UsageError(f"expected a loss among {list(LOSSES)}, received {name!r}")
    output = np.asarray(output, dtype=np.float64)
    if output.ndim == 0 or len(output) == 0:
        raise DataError(f"expected a non-empty batch of outputs, received shape {output.shape}")
    if name == "mse":
        return mean_squared_error(output, target)
    if name == "mae":
        return mean_absolute_error(output, target)
    if name == "binary_crossentropy":
        target = _as_float_like(output, target)
        if from_logits:
            return float(np.mean(np.maximum(output, 0) - output * target + np.log1p(np.exp(-np.abs(output)))))
        p = np.clip(output, EPSILON, 1 - EPSILON)
        return float(np.mean(-target * np.log(p) - (1 - target) * np.log(1 - p)))
    if output.ndim != 2:
        raise DataError(f"{name} expected outputs of shape (N, C), received shape {output.shape}")
    if name == "sparse_categorical_crossentropy":
        labels = np.asarray(target)
        if labels.shape != output.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"expected integer labels of shape {output.shape[:1]}, received {labels.dtype} {labels.shape}"
            )
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= output.shape[1]:
            raise DataError(f"expected labels in [0, {output.shape[1]}), received [{labels.min()}, {labels.max()}]")
    if from_logits:
        log_p = _log_softmax(output)
    else:
        log_p = np.log(np.clip(output / output.sum(axis=1, keepdims=True), EPSILON, 1 - EPSILON))
    if name == "categorical_crossentropy":
        return float(-np.mean(np.sum(_as_float_like(output, target) * log_p, axis=1)))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def _per_sample(name: str, output: np.ndarray, target: np.ndarray, from_logits: bool) -> np.ndarray:
    """The loss of every sample alone (N,): the mean over its elements for mse, mae and binary."""
    if name in ("mse", "mae", "binary_crossentropy"):
        target = _as_float_like(output, target)
        if name == "mse":
            elements = (output - target) ** 2
        elif name == "mae":
            elements = np.abs(output - target)
        elif from_logits:
            elements = np.maximum(output, 0) - output * target + np.log1p(np.exp(-np.abs(output)))
        else:
            p = np.clip(output, EPSILON, 1 - EPSILON)
            elements = -target * np.log(p) - (1 - target) * np.log(1 - p)
        return elements.reshape(len(output), -1).mean(axis=1)
    if output.ndim != 2:
        raise DataError(f"{name} expected outputs of shape (N, C), received shape {output.shape}")
    if from_logits:
        log_p = _log_softmax(output)
    else:
        log_p = np.log(np.clip(output / output.sum(axis=1, keepdims=True), EPSILON, 1 - EPSILON))
    if name == "categorical_crossentropy":
        return -np.sum(_as_float_like(output, target) * log_p, axis=1)
    labels = np.asarray(target)
    if labels.shape != output.shape[:1] or labels.min(initial=0) < 0 or labels.max(initial=0) >= output.shape[1]:
        raise DataError(f"expected integer labels in [0, {output.shape[1]}) of shape {output.shape[:1]}")
    return -log_p[np.arange(len(labels)), labels]


def mean_squared_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """mean of (prediction - target)**2 over all elements."""
    predictions = np.asarray(predictions, dtype=np.float64)
    return float(np.mean((predictions - _as_float_like(predictions, targets)) ** 2))


def mean_absolute_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """mean of |prediction - target| over all elements."""
    predictions = np.asarray(predictions, dtype=np.float64)
    return float(np.mean(np.abs(predictions - _as_float_like(predictions, targets))))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    # The row maximum is subtracted first (it cancels) so that large logits do not overflow.
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _as_float_like(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` as float64 in ``output``'s shape; (N,) and (N, 1) are interchangeable."""
    target = np.asarray(target, dtype=np.float64)
    if _drop_unit_column(target.shape) != _drop_unit_column(output.shape):
        raise DataError(f"expected targets of shape {output.shape}, received shape {target.shape}")
    return target.reshape(output.shape)


def _drop_unit_column(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[:1] if len(shape) == 2 and shape[1] == 1 else shape


def sample_weights(
    y: np.ndarray, loss: str, class_weight: dict[int, float] | None, weights: np.ndarray | None
) -> np.ndarray | None:
    """Each sample's loss weight: ``weights[n] * class_weight[class of n]`` (None: all 1).

    A sample's class is its label (sparse), ``argmax`` of its one-hot row (categorical) or its
    rounded target (binary), as Keras reads ``class_weight``; a class missing from
    ``class_weight`` weighs 1.
    """
    if class_weight is None and weights is None:
        return None
    result = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    if class_weight:
        labels = np.asarray(y)
        if labels.ndim > 1 and labels.shape[-1] > 1:
            labels = np.argmax(labels, axis=-1)
        labels = np.round(labels.reshape(len(y))).astype(np.int64)
        table = np.ones(max(int(labels.max(initial=0)), max(class_weight)) + 1)
        for label, weight in class_weight.items():
            table[label] = weight
        result = result * table[labels]
    return result
