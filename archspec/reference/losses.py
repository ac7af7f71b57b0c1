"""Reference losses and weight penalties, in float64 numpy.

Every loss is the mean over the batch of a per-sample loss; for ``mse`` and ``mae``
the per-sample loss is the mean over features, so the loss is the mean of all elements.
With several outputs the loss is the weighted sum of each output's (``total_loss``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from archspec.definitions.constants import EPSILON
from archspec.errors import DataError, UsageError


def sparse_categorical_crossentropy(output: np.ndarray, labels: np.ndarray, from_logits: bool) -> float:
    """output (N, C), labels int (N,):  mean_n  -log p[n, labels[n]]

    p = softmax(output) from logits, computed as log-softmax with the row max subtracted;
    otherwise p = clip(output / sum_c output, EPSILON, 1 - EPSILON). This equals
    categorical_crossentropy with one-hot labels, as in Keras' numpy backend (Keras'
    TensorFlow backend instead renormalises after clipping: it differs once a clip bites).
    """
    labels = np.asarray(labels)
    if labels.shape != output.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"expected integer labels of shape {output.shape[:1]}, received {labels.dtype} {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= output.shape[1]:
        raise DataError(f"expected labels in [0, {output.shape[1]}), received [{labels.min()}, {labels.max()}]")
    log_p = _log_probabilities(output, from_logits)
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def categorical_crossentropy(output: np.ndarray, target: np.ndarray, from_logits: bool) -> float:
    """output (N, C), target (N, C) one-hot or soft:  mean_n  -sum_c target[n, c] * log p[n, c]

    p as in :func:`sparse_categorical_crossentropy`.
    """
    target = _same_shape(output, target)
    return float(-np.mean(np.sum(target * _log_probabilities(output, from_logits), axis=1)))


def binary_crossentropy(output: np.ndarray, target: np.ndarray, from_logits: bool) -> float:
    """output (N, 1) or (N,), target in [0, 1] of the same size; mean over all elements of

    from logits z:       max(z, 0) - z * y + log1p(exp(-|z|))     (= -y log s(z) - (1-y) log(1-s(z)))
    from probabilities:  -y log p - (1 - y) log(1 - p),   p = clip(output, EPSILON, 1 - EPSILON)
    """
    target = _same_shape(output, target)
    if from_logits:
        z = output
        return float(np.mean(np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))))
    p = np.clip(output, EPSILON, 1 - EPSILON)
    return float(np.mean(-target * np.log(p) - (1 - target) * np.log(1 - p)))


def mse(output: np.ndarray, target: np.ndarray, from_logits: bool) -> float:
    """mean of (output - target)**2 over all elements; ``from_logits`` has no effect."""
    return float(np.mean((output - _same_shape(output, target)) ** 2))


def mae(output: np.ndarray, target: np.ndarray, from_logits: bool) -> float:
    """mean of |output - target| over all elements; ``from_logits`` has no effect."""
    return float(np.mean(np.abs(output - _same_shape(output, target))))


_LOSSES: dict[str, Callable[[np.ndarray, np.ndarray, bool], float]] = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mse": mse,
    "mae": mae,
}

LOSS_NAMES = tuple(_LOSSES)


def loss_value(
    name: str, output: np.ndarray, target: np.ndarray, *, from_logits: bool, sample_weight: np.ndarray | None = None
) -> float:
    """The loss ``name`` of a batch; ``output`` is pre-activation when ``from_logits``.

    With ``sample_weight`` (N,): ``sum_n w[n] * loss(sample n alone) / N``, Keras' weighted
    mean (normalised by the batch size, not by the sum of the weights).
    """
    if sample_weight is not None:
        output = np.asarray(output, dtype=np.float64)
        target = np.asarray(target)
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != output.shape[:1]:
            raise DataError(f"expected one weight per sample {output.shape[:1]}, received {weights.shape}")
        alone = [
            loss_value(name, output[n : n + 1], target[n : n + 1], from_logits=from_logits) for n in range(len(output))
        ]
        return float(sum(w * value for w, value in zip(weights, alone)) / len(output))
    if name not in _LOSSES:
        raise UsageError(f"expected a loss among {list(LOSS_NAMES)}, received {name!r}")
    output = np.asarray(output, dtype=np.float64)
    if output.ndim == 0 or len(output) == 0:
        raise DataError(f"expected a non-empty batch of outputs, received shape {output.shape}")
    if name.endswith("categorical_crossentropy") and output.ndim != 2:
        raise DataError(f"{name} expected outputs of shape (N, C), received shape {output.shape}")
    return _LOSSES[name](output, target, from_logits)


def total_loss(
    parts: Sequence[tuple[str, np.ndarray, np.ndarray, bool, float]], *, sample_weight: np.ndarray | None = None
) -> float:
    """The loss of a model with several outputs (Keras 3's ``CompileLoss``):

        sum over outputs o, in the spec's order, of  weight_o * loss_o(output_o, target_o)

    ``parts``: ``(loss name, output, target, from_logits, weight)`` per output; ``output`` is
    pre-activation when ``from_logits``. ``sample_weight`` (N,) weights every output's loss
    (``loss_value``). Regularization penalties are added once, outside this sum.
    """
    total = 0.0
    for name, output, target, from_logits, weight in parts:
        total += weight * loss_value(name, output, target, from_logits=from_logits, sample_weight=sample_weight)
    return float(total)


def regularization_penalty(weights: Mapping[str, np.ndarray], regularizers: Mapping[str, Mapping[str, float]]) -> float:
    """sum over regularized weights w of  l1 * sum|w| + l2 * sum w**2   (Keras convention: no 1/2).

    ``regularizers`` maps a weight name to ``{"l1": a, "l2": b}`` (either may be absent).
    """
    total = 0.0
    for name, factors in regularizers.items():
        if name not in weights:
            raise UsageError(f"expected a regularized weight among {sorted(weights)}, received {name!r}")
        unknown = sorted(set(factors) - {"l1", "l2"})
        if unknown:
            raise UsageError(f"expected regularizer factors 'l1' and/or 'l2' for {name!r}, received {unknown}")
        w = np.asarray(weights[name], dtype=np.float64)
        total += factors.get("l1", 0.0) * np.sum(np.abs(w)) + factors.get("l2", 0.0) * np.sum(w * w)
    return float(total)


def _log_probabilities(output: np.ndarray, from_logits: bool) -> np.ndarray:
    if from_logits:
        shifted = output - output.max(axis=1, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    # Keras renormalises the rows before clipping, so softmax round-off cancels out.
    p = output / output.sum(axis=1, keepdims=True)
    return np.log(np.clip(p, EPSILON, 1 - EPSILON))


def _same_shape(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` as float64 in ``output``'s shape; (N,) and (N, 1) are interchangeable."""
    target = np.asarray(target, dtype=np.float64)
    if _without_unit_column(target.shape) != _without_unit_column(output.shape):
        raise DataError(f"expected targets of shape {output.shape}, received shape {target.shape}")
    return target.reshape(output.shape)


def _without_unit_column(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[:1] if len(shape) == 2 and shape[1] == 1 else shape
