"""Inference-mode loss and metrics of a split, computed once in numpy for every backend.

With several outputs, the loss is ``sum_o weight_o * loss_o`` (as the step loss), reported as
``loss`` beside each output's ``{output}_loss`` and ``{output}_{metric}``.

With workers, every worker runs the forward pass of its share of the split and an
all-reduce gives all of them every output, so evaluation takes 1/N of the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archspec.data.splits import Arrays, sample_count, take
from archspec.losses import loss_value
from archspec.metrics import compute_metrics
from archspec.objectives import Objective
from archspec.resources import EVALUATION_BATCH
from archspec.targets import by_name, prepare_targets
from archspec.training.cluster import Cluster, share_bounds

_TASKS = {"binary_crossentropy": "binary", "mse": "regression", "mae": "regression"}


def evaluate(
    model,
    x: Arrays,
    y: Arrays,
    goals: Sequence[Objective],
    num_classes,
    batch_size: int = EVALUATION_BATCH,
    forward=None,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Inference-mode loss and metrics on one split.

    ``goals``: every output's objective (``archspec.objectives.objectives``); ``x`` and ``y``
    one array or a dict by input / output name. ``forward(x, batch_size)``: the model's
    tensors by name, every output and head logits (default: ``model.forward_tensors``).
    ``sample_weight``: each sample's loss weight (class weights included): each output's loss
    is the weighted one, ``sum(w * l) / N``, as in training; metrics are not weighted.
    """
    tensors = (forward or model.forward_tensors)(x, batch_size=batch_size)
    targets = by_name(y, [goal.output for goal in goals], "y", "output")
    values: dict[str, float] = {"loss": 0.0}
    for goal in goals:
        head, y_out = goal.head, targets[goal.output][1]
        logits = tensors[head.logits]
        classes = num_classes
        if classes is None and goal.loss == "categorical_crossentropy":
            classes = logits.shape[-1]
        target = prepare_targets(y_out, goal.loss, classes, "float64")
        loss = loss_value(goal.loss, logits, target, from_logits=head.from_logits, sample_weight=sample_weight)
        values["loss"] += goal.weight * loss
        if len(goals) > 1:
            values[f"{goal.prefix}loss"] = loss
        if goal.metrics:
            probabilities = _activate(logits, head.activation) if head.from_logits else tensors[goal.output]
            task = _TASKS.get(goal.loss, "multiclass")
            labels = y_out if task != "regression" else target
            if task == "multiclass" and y_out.ndim == 2:
                labels = np.argmax(y_out, axis=1)
            found = compute_metrics(list(goal.metrics), np.asarray(probabilities, dtype=np.float64), labels, task)
            values.update({f"{goal.prefix}{name}": value for name, value in found.items()})
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

    def __init__(self, model, engine, goals: Sequence[Objective], num_classes: int | None, cluster: Cluster | None):
        self.model, self.engine, self.cluster = model, engine, cluster
        self.goals, self.num_classes = tuple(goals), num_classes

    @property
    def reports_training_split(self) -> bool:
        """Whether an epoch evaluates the training split: for its metrics, or with several
        outputs for each output's loss (the epoch's ``loss`` is the mean step loss)."""
        return len(self.goals) > 1 or any(goal.metrics for goal in self.goals)

    def __call__(self, pair: tuple[Arrays, Arrays], weights: np.ndarray | None = None) -> dict[str, float]:
        forward = self._forward_shared if self.cluster is not None else None
        return evaluate(
            self.model, pair[0], pair[1], self.goals, self.num_classes, forward=forward, sample_weight=weights
        )

    def _forward_shared(self, x: Arrays, batch_size: int) -> dict[str, np.ndarray]:
        """Every worker runs its share of ``x``; an all-reduce of the zero-padded outputs gives
        all of them every output (so no worker waits)."""
        cluster = self.cluster
        total = sample_count(x)
        if cluster is None or total < cluster.world_size:
            return self.model.forward_tensors(x, batch_size=batch_size)
        start, stop = share_bounds(total, cluster.world_size, cluster.rank)
        outputs = {}
        for key, part in self.model.forward_tensors(take(x, slice(start, stop)), batch_size=batch_size).items():
            full = np.zeros((total, *part.shape[1:]), dtype=np.float64)
            full[start:stop] = part
            outputs[key] = self.engine.all_reduce_sum(full.reshape(-1)).reshape(full.shape).astype(part.dtype)
        return outputs
