"""Inference-mode loss and metrics of a split, computed once in numpy for every backend.

With workers, every worker runs the forward pass of its share of the split and an
all-reduce gives all of them every output, so evaluation takes 1/N of the time.
"""

from __future__ import annotations

import numpy as np

from archspec.losses import loss_value
from archspec.metrics import compute_metrics
from archspec.resources import EVALUATION_BATCH
from archspec.targets import prepare_targets
from archspec.training.cluster import Cluster, share_bounds

_TASKS = {"binary_crossentropy": "binary", "mse": "regression", "mae": "regression"}


def evaluate(
    model,
    x: np.ndarray,
    y: np.ndarray,
    training_spec,
    head,
    num_classes,
    batch_size: int = EVALUATION_BATCH,
    forward=None,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Inference-mode loss and metrics on one split.

    ``forward(x, batch_size)``: the model's ``{"output", "logits"}`` (default: ``model.forward_batches``).
    ``sample_weight``: each sample's loss weight (class weights included): the loss is the
    weighted one, ``sum(w * l) / N``, as in training; metrics are not weighted.
    """
    outputs = (forward or model.forward_batches)(x, batch_size=batch_size)
    logits, probabilities = outputs["logits"], outputs["output"]
    target = prepare_targets(y, training_spec.loss, num_classes, "float64")
    values = {
        "loss": loss_value(
            training_spec.loss, logits, target, from_logits=head.from_logits, sample_weight=sample_weight
        )
    }
    if training_spec.metrics:
        if head.from_logits:
            probabilities = _activate(logits, head.activation)
        task = _TASKS.get(training_spec.loss, "multiclass")
        labels = y if task != "regression" else target
        if task == "multiclass" and y.ndim == 2:
            labels = np.argmax(y, axis=1)
        values.update(
            compute_metrics(list(training_spec.metrics), np.asarray(probabilities, dtype=np.float64), labels, task)
        )
    return values


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if activation == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


class Evaluator:
    """Evaluates a run's model on its splits, sharing the work between the workers of ``cluster``."""

    def __init__(self, model, engine, training, head, num_classes: int | None, cluster: Cluster | None):
        self.model, self.engine, self.cluster = model, engine, cluster
        self.training, self.head, self.num_classes = training, head, num_classes

    def __call__(self, pair: tuple[np.ndarray, np.ndarray], weights: np.ndarray | None = None) -> dict[str, float]:
        forward = self._forward_shared if self.cluster is not None else None
        return evaluate(
            self.model,
            pair[0],
            pair[1],
            self.training,
            self.head,
            self.num_classes,
            forward=forward,
            sample_weight=weights,
        )

    def _forward_shared(self, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """Every worker runs its share of ``x``; an all-reduce of the zero-padded outputs gives
        all of them every output (so no worker waits)."""
        cluster = self.cluster
        if cluster is None or len(x) < cluster.world_size:
            return self.model.forward_batches(x, batch_size=batch_size)
        start, stop = share_bounds(len(x), cluster.world_size, cluster.rank)
        outputs = {}
        for key, part in self.model.forward_batches(x[start:stop], batch_size=batch_size).items():
            full = np.zeros((len(x), *part.shape[1:]), dtype=np.float64)
            full[start:stop] = part
            outputs[key] = self.engine.all_reduce_sum(full.reshape(-1)).reshape(full.shape).astype(part.dtype)
        return outputs
