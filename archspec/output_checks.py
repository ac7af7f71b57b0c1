"""Checks of the training section against the model's outputs: the mappings by output name
(``loss``, ``loss_weights``, ``metrics``) and, per output, that its loss and metrics suit it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archspec.spec.source import Location, suggest
from archspec.spec.training import CROSS_ENTROPY_LOSSES, Training

if TYPE_CHECKING:  # graph.py imports checks.py, which imports this module; annotations only
    from archspec.graph import ModelGraph


def mapping_problems(graph: ModelGraph, training: Training) -> list[tuple[Location, str]]:
    """A mapping that names an output the model lacks, or (``loss``, ``loss_weights``) leaves one
    out; ``class_weight`` with several outputs (Keras refuses it too: sample weights apply to all)."""
    outputs = list(graph.outputs)
    problems: list[tuple[Location, str]] = []
    mappings = (("loss", training.loss, True), ("loss_weights", training.loss_weights, True))
    for field, value, complete in (*mappings, ("metrics", training.metrics, False)):
        if not isinstance(value, dict):
            continue
        for name in value:
            if name not in outputs:
                hint = suggest(name, outputs)
                problems.append(
                    (
                        ("training", field, name),
                        f"training.{field}: expected output names of the model ({', '.join(outputs)}), "
                        f"received {name!r}" + (f"; {hint}" if hint else ""),
                    )
                )
        missing = [name for name in outputs if name not in value]
        if complete and missing:
            problems.append(
                (
                    ("training", field),
                    f"training.{field}: expected an entry for every output ({', '.join(outputs)}), "
                    f"received none for {', '.join(map(repr, missing))}",
                )
            )
    if training.class_weight is not None and len(outputs) > 1:
        problems.append(
            (
                ("training", "class_weight"),
                f"training.class_weight: expected a model with one output (as Keras), received {len(outputs)} "
                "outputs; weight samples with data=(x, y, sample_weight) instead",
            )
        )
    return problems


def output_problems(graph: ModelGraph, training: Training, output: str) -> list[tuple[Location, str]]:
    """Where ``output``'s loss does not suit its activation or shape, or a metric its loss."""
    node = graph.node_by_id[output]
    several = len(graph.outputs) > 1
    lead = f"output '{output}': " if several else ""
    where: Location = ("training", "loss", output) if isinstance(training.loss, dict) else ("layers", node.index)
    activation = node.activation or "linear"
    shape = node.output_shape
    loss = training.loss_of(output)
    problems: list[tuple[Location, str]] = []
    categorical = loss in ("sparse_categorical_crossentropy", "categorical_crossentropy")
    allowed = ("softmax", "sigmoid", "linear", "log_softmax") if categorical else ("softmax", "sigmoid", "linear")
    if loss in CROSS_ENTROPY_LOSSES and activation not in allowed:
        problems.append(
            (
                where,
                f"{lead}{loss} expects the output layer's activation to be softmax, sigmoid or linear (logits), received {activation}",
            )
        )
    if loss == "binary_crossentropy":
        if activation == "softmax":
            problems.append(
                (
                    where,
                    f"{lead}binary_crossentropy expects a sigmoid (or linear) output with 1 unit, received a softmax output; use sigmoid, or sparse_categorical_crossentropy for classes",
                )
            )
        if shape[-1:] != (1,) or len(shape) != 1:
            problems.append(
                (where, f"{lead}binary_crossentropy expects an output of shape [1], received {list(shape)}")
            )
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        if activation == "sigmoid":
            problems.append(
                (
                    where,
                    f"{lead}{loss} expects a softmax (or linear) output, received sigmoid; use binary_crossentropy for one sigmoid unit",
                )
            )
        if len(shape) != 1 or shape[0] < 2:
            problems.append(
                (
                    where,
                    f"{lead}{loss} expects an output of shape [classes] with at least 2 classes, received {list(shape)}",
                )
            )
    classifier = loss in CROSS_ENTROPY_LOSSES
    metrics = training.metrics_of(output)
    for k, metric in enumerate(metrics):
        place: Location = (
            ("training", "metrics", output, k) if isinstance(training.metrics, dict) else ("training", "metrics", k)
        )
        if classifier and metric in ("mse", "mae"):
            problems.append((place, f"{lead}metric '{metric}' is for regression, but the loss is {loss}"))
        if not classifier and metric not in ("mse", "mae"):
            problems.append((place, f"{lead}metric '{metric}' is for classification, but the loss is {loss}"))
    return problems
