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
from archspec.output_checks import mapping_problems, output_problems
from archspec.spec.common import Shape
from archspec.spec.data import MnistData, SequencesData
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
    """Where the training section (losses, weights, metrics) or the data set does not fit the model."""
    spec = graph.spec
    training = spec.training
    if training is None:
        return []
    problems = mapping_problems(graph, training)
    if problems:
        return problems
    for output in graph.outputs:
        problems.extend(output_problems(graph, training, output))
    shape = graph.node_by_id[graph.outputs[0]].output_shape
    problems.extend(_check_data(graph, training.loss_of(graph.outputs[0]), shape))
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
    outputs = [(f"{name}_" if len(graph.outputs) > 1 else "", training.metrics_of(name)) for name in graph.outputs]
    possible = history_keys(outputs, splits or ("train", "validation", "test"))
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
    if training.class_weight is not None and len(graph.outputs) == 1:  # several: refused in output_checks
        loss = training.loss_of(graph.outputs[0])
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
    if data.dataset == "mnist":
        return _check_mnist(graph, data)
    problems: list[tuple[Location, str]] = []
    (input_name, model_input), *rest = spec.inputs.items()
    if rest or len(graph.outputs) > 1:
        return [(("data",), f"the {data.dataset} data set feeds one input and one output; this spec has several")]
    if data.dataset == "sequences":
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


def _check_mnist(graph: ModelGraph, data: MnistData) -> list[tuple[Location, str]]:
    """Every model input gets a view of the digits, every output a target of the right kind."""
    spec, training = graph.spec, graph.spec.training
    assert training is not None
    problems: list[tuple[Location, str]] = []
    names = list(spec.inputs)
    views: dict[str, str] = {}
    if data.inputs is None:
        if len(names) > 1:
            message = f"mnist feeds one input; map each model input ({', '.join(names)}) to a view in data.inputs"
            problems.append((("data",), message))
        else:
            views = {names[0]: data.view}
    else:
        problems.extend(_names_problems(("data", "inputs"), list(data.inputs), names, "model input"))
        views = {name: entry.view or data.view for name, entry in data.inputs.items() if name in spec.inputs}
    for name, view in views.items():
        expected = MNIST_VIEWS[view]
        if tuple(spec.inputs[name].shape) != expected:
            message = f"mnist view '{view}' gives samples of shape {list(expected)}, but input '{name}' has shape {spec.inputs[name].shape}"
            problems.append((("inputs", name, "shape"), message))
    outputs = list(graph.outputs)
    kinds: dict[str, str] = {}
    if data.targets is None:
        if len(outputs) > 1:
            message = f"mnist gives one target; map each output ({', '.join(outputs)}) to digit or even in data.targets"
            problems.append((("data",), message))
        else:
            kinds = {outputs[0]: "digit"}
    else:
        problems.extend(_names_problems(("data", "targets"), list(data.targets), outputs, "model output"))
        kinds = {name: kind for name, kind in data.targets.items() if name in graph.node_by_id}
    for output, kind in kinds.items():
        loss, node = training.loss_of(output), graph.node_by_id[output]
        where: Location = ("training", "loss", output) if isinstance(training.loss, dict) else ("training", "loss")
        shape = node.output_shape
        if kind == "digit":
            if loss not in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
                message = f"mnist has 10 classes: expected sparse_categorical_crossentropy or categorical_crossentropy, received {loss}"
                problems.append((where, message))
            elif shape != (10,):
                message = f"mnist has 10 classes: expected an output of shape [10], received {list(shape)}"
                problems.append((("layers", node.index), message))
        else:
            if loss not in ("binary_crossentropy", "mse", "mae"):
                message = f"mnist target 'even' is 0 or 1: expected binary_crossentropy, mse or mae, received {loss}"
                problems.append((where, message))
            elif shape != (1,):
                message = f"mnist target 'even' is one value: expected an output of shape [1], received {list(shape)}"
                problems.append((("layers", node.index), message))
    return problems


def _names_problems(where: Location, given: list[str], expected: list[str], what: str) -> list[tuple[Location, str]]:
    """A mapping by name that names something unknown, or leaves a name out."""
    problems: list[tuple[Location, str]] = []
    for name in given:
        if name not in expected:
            hint = suggest(name, expected)
            message = f"expected a {what} ({', '.join(expected)}), received {name!r}" + (f"; {hint}" if hint else "")
            problems.append(((*where, name), message))
    missing = [name for name in expected if name not in given]
    if missing:
        problems.append(
            (where, f"expected an entry for every {what} ({', '.join(expected)}), missing {', '.join(missing)}")
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
