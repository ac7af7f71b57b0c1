"""Checks on a resolved graph, beyond references and shapes.

*Problems* make a spec invalid: the training section or the data set does not fit the
model (``training_problems``, called by ``graph.resolve``). *Warnings* point at specs that
are legal but wasteful; the spec stays valid. A warning check is a function from a graph to
``SpecWarning``s, registered with ``@warning_check``; ``spec_warnings(graph)`` runs them all,
and ``archspec validate`` prints them as ``FILE:LINE:COL: warning: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archspec.definitions.controls import history_keys
from archspec.errors import Problem
from archspec.spec.common import Shape
from archspec.spec.data import SequencesData
from archspec.spec.document import Input
from archspec.spec.files import FileData, file_data_problems
from archspec.spec.source import Location, SourceDocument, suggest
from archspec.spec.training import CROSS_ENTROPY_LOSSES

if TYPE_CHECKING:  # graph.py imports this module to check training; annotations only
    from archspec.graph import ModelGraph


@dataclass(frozen=True)
class SpecWarning:
    """A legal but wasteful choice: where it is in the spec, and what to do instead."""

    location: Location
    message: str

    def located(self, document: SourceDocument) -> Problem:
        """This warning placed in ``document``: prints as ``FILE:LINE:COL: warning: ...``."""
        return document.problem(self.message, self.location, lead="warning: ")

    def __str__(self) -> str:
        return f"warning: {self.message}"


WarningCheck = Callable[["ModelGraph"], Iterable[SpecWarning]]
WARNING_CHECKS: list[WarningCheck] = []


def warning_check(check: WarningCheck) -> WarningCheck:
    """Register ``check`` so that ``spec_warnings`` runs it."""
    WARNING_CHECKS.append(check)
    return check


def spec_warnings(graph: ModelGraph) -> list[SpecWarning]:
    """Every warning about ``graph``'s spec (each check's, in registration order); empty
    when there is nothing to say. From Python::

        for warning in spec_warnings(resolve(archspec.load("model.yaml"))):
            print(warning.location, warning.message)  # ('layers', 0, 'use_bias') layer 'conv' ...
    """
    return [warning for check in WARNING_CHECKS for warning in check(graph)]


@warning_check
def bias_before_batch_norm(graph: ModelGraph) -> Iterable[SpecWarning]:
    """A bias added right before batch_norm: the batch mean removes it, so its gradient is
    zero, and RMSprop or Adam (which divide by the gradient's size) amplify rounding noise
    into it. Only when the bias is the layer's last step (a linear activation) and every
    reader of the layer's output is such a normalisation."""
    readers: dict[str, list] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    for node in graph.nodes:
        biased = getattr(node.layer, "use_bias", False) and node.layer.activation_after
        followers = readers.get(node.id, [])
        if not biased or node.activation != "linear" or node.id in graph.outputs or not followers:
            continue
        if all(reader.layer.removes_channel_offsets for reader in followers):
            names = ", ".join(f"{reader.type} '{reader.id}'" for reader in followers)
            yield SpecWarning(
                ("layers", node.index, "use_bias"),
                f"layer '{node.id}' adds a bias right before {names}, which subtracts the batch mean "
                "and so removes it: its gradient is zero and RMSprop or Adam amplify rounding noise "
                "into it; set use_bias: false",
            )


def training_problems(graph: ModelGraph) -> list[tuple[Location, str]]:
    """Where the training section (loss, metrics) or the data set does not fit the model."""
    spec = graph.spec
    training = spec.training
    if training is None:
        return []
    problems: list[tuple[Location, str]] = []
    if len(graph.outputs) != 1:
        problems.append((("outputs",), f"training needs exactly one output, the spec has {len(graph.outputs)}"))
        return problems
    node = graph.node_by_id[graph.outputs[0]]
    where = ("layers", node.index)
    activation = node.activation or "linear"
    shape = node.output_shape
    loss = training.loss
    categorical = loss in ("sparse_categorical_crossentropy", "categorical_crossentropy")
    allowed = ("softmax", "sigmoid", "linear", "log_softmax") if categorical else ("softmax", "sigmoid", "linear")
    if loss in CROSS_ENTROPY_LOSSES and activation not in allowed:
        problems.append(
            (
                where,
                f"{loss} expects the output layer's activation to be softmax, sigmoid or linear (logits), received {activation}",
            )
        )
    if loss == "binary_crossentropy":
        if activation == "softmax":
            problems.append(
                (
                    where,
                    "binary_crossentropy expects a sigmoid (or linear) output with 1 unit, received a softmax output; use sigmoid, or sparse_categorical_crossentropy for classes",
                )
            )
        if shape[-1:] != (1,) or len(shape) != 1:
            problems.append((where, f"binary_crossentropy expects an output of shape [1], received {list(shape)}"))
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        if activation == "sigmoid":
            problems.append(
                (
                    where,
                    f"{loss} expects a softmax (or linear) output, received sigmoid; use binary_crossentropy for one sigmoid unit",
                )
            )
        if len(shape) != 1 or shape[0] < 2:
            problems.append(
                (where, f"{loss} expects an output of shape [classes] with at least 2 classes, received {list(shape)}")
            )
    classifier = loss in CROSS_ENTROPY_LOSSES
    for k, metric in enumerate(training.metrics):
        if classifier and metric in ("mse", "mae"):
            problems.append(
                (("training", "metrics", k), f"metric '{metric}' is for regression, but the loss is {loss}")
            )
        if not classifier and metric not in ("mse", "mae"):
            problems.append(
                (("training", "metrics", k), f"metric '{metric}' is for classification, but the loss is {loss}")
            )
    problems.extend(_check_data(graph, loss, shape))
    problems.extend(_check_controls(graph, shape))
    return problems


def _data_splits(graph: ModelGraph) -> tuple[str, ...] | None:
    """The splits the spec's data set gives (None without a data section: any may come)."""
    data = graph.spec.data
    if data is None:
        return None
    splits = ["train"]
    if isinstance(data, FileData):  # fractions, or a file per split
        files = data.files()
        if data.validation_split > 0 or "validation" in files:
            splits.append("validation")
        if data.test_split > 0 or "test" in files:
            splits.append("test")
        return tuple(splits)
    if data.validation_split > 0:
        splits.append("validation")
    if data.dataset == "mnist" or data.test_split > 0:
        splits.append("test")
    return tuple(splits)


def _check_controls(graph: ModelGraph, output_shape: Shape) -> list[tuple[Location, str]]:
    """Monitors that name a history key the run will have; class weights for existing classes."""
    training = graph.spec.training
    assert training is not None
    problems: list[tuple[Location, str]] = []
    splits = _data_splits(graph)
    possible = history_keys(training.loss, list(training.metrics), splits or ("train", "validation", "test"))
    for field in ("early_stopping", "reduce_on_plateau"):
        control = getattr(training, field)
        if control is None or control.monitor in possible:
            continue
        hint = suggest(control.monitor, possible)
        message = f"training.{field}.monitor: expected a history key the run will have ({', '.join(possible)}), received {control.monitor!r}"
        if splits is not None and control.monitor.startswith("validation_") and "validation" not in splits:
            message += "; the data section sets no validation_split, so there is no validation split"
        elif hint:
            message += f"; {hint}"
        problems.append((("training", field, "monitor"), message))
    if training.class_weight is not None:
        loss = training.loss
        if loss not in CROSS_ENTROPY_LOSSES:
            problems.append(
                (
                    ("training", "class_weight"),
                    f"training.class_weight: expected a classification loss, received {loss}",
                )
            )
        else:
            classes = 2 if loss == "binary_crossentropy" else (output_shape[-1] if output_shape else 0)
            for label in training.class_weight:
                if label >= classes:
                    problems.append(
                        (
                            ("training", "class_weight", label),
                            f"training.class_weight: expected classes 0 to {classes - 1} (the output has {classes}), received class {label}",
                        )
                    )
    return problems


MNIST_VIEWS = {"flat": (784,), "image": (28, 28, 1), "sequence": (28, 28)}


def _check_data(graph: ModelGraph, loss: str, output_shape: Shape) -> list[tuple[Location, str]]:
    spec = graph.spec
    data = spec.data
    if data is None:
        return []
    if isinstance(data, FileData):
        return file_data_problems(data, list(spec.inputs), list(graph.outputs))
    problems: list[tuple[Location, str]] = []
    (input_name, model_input), *rest = spec.inputs.items()
    if rest:
        return [(("data",), "data sets feed a single input; this spec has several")]
    if data.dataset == "mnist":
        expected = MNIST_VIEWS[data.view]
        if tuple(model_input.shape) != expected:
            problems.append(
                (
                    ("inputs", input_name, "shape"),
                    f"mnist view '{data.view}' gives samples of shape {list(expected)}, but input '{input_name}' has shape {model_input.shape}",
                )
            )
        if loss not in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
            problems.append(
                (
                    ("training", "loss"),
                    f"mnist has 10 classes: expected sparse_categorical_crossentropy or categorical_crossentropy, received {loss}",
                )
            )
        elif output_shape != (10,):
            problems.append(
                (
                    ("layers", len(spec.layers) - 1),
                    f"mnist has 10 classes: expected an output of shape [10], received {list(output_shape)}",
                )
            )
    elif data.dataset == "sequences":
        problems.extend(_check_sequences(data, input_name, model_input, loss, output_shape))
    else:
        if tuple(model_input.shape) != (data.n_features,):
            problems.append(
                (
                    ("inputs", input_name, "shape"),
                    f"the {data.dataset} data set gives samples of shape [{data.n_features}], but input '{input_name}' has shape {model_input.shape}",
                )
            )
        allowed = ("mse", "mae") if data.dataset == "regression" else ("binary_crossentropy",)
        if loss not in allowed:
            problems.append(
                (
                    ("training", "loss"),
                    f"the {data.dataset} data set expects loss {' or '.join(allowed)}, received {loss}",
                )
            )
        if output_shape != (1,):
            problems.append(
                (
                    ("outputs",),
                    f"the {data.dataset} data set expects an output of shape [1], received {list(output_shape)}",
                )
            )
    return problems


def _check_sequences(
    data: SequencesData, input_name: str, model_input: Input, loss: str, output_shape: Shape
) -> list[tuple[Location, str]]:
    """The sequences set gives integer tokens (max_length,) and class labels."""
    problems: list[tuple[Location, str]] = []
    if tuple(model_input.shape) != (data.max_length,):
        message = f"the sequences data set gives samples of shape [{data.max_length}] (max_length), but input '{input_name}' has shape {model_input.shape}"
        problems.append((("inputs", input_name, "shape"), message))
    if model_input.dtype == "float":
        message = f"the sequences data set gives integer tokens: expected input '{input_name}' of dtype int32 or int64, received float"
        problems.append((("inputs", input_name), message))
    classes = data.num_classes
    categorical = ("sparse_categorical_crossentropy", "categorical_crossentropy")
    allowed = (*categorical, "binary_crossentropy") if classes == 2 else categorical
    if loss not in allowed:
        message = f"the sequences task '{data.task}' has {classes} classes: expected loss {' or '.join(allowed)}, received {loss}"
        problems.append((("training", "loss"), message))
    else:
        expected = (1,) if loss == "binary_crossentropy" else (classes,)
        if output_shape != expected:
            message = f"the sequences task '{data.task}' with {loss} expects an output of shape {list(expected)}, received {list(output_shape)}"
            problems.append((("outputs",), message))
    return problems
