"""Every numeric field of every spec model refuses booleans, truncation and non-finite values.

The fields are found by walking the pydantic models reachable from ``Spec`` (through
discriminated unions, optionals, lists, tuples and mappings), so a field added later is
covered without touching this file.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel

from archspec import load
from archspec.errors import SpecError
from archspec.spec import Spec


def _members(annotation: Any) -> list[Any]:
    """The concrete types an annotation allows: Annotated, unions and None removed."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    if annotation is type(None):
        return []
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tag(model: type[BaseModel]) -> dict[str, Any]:
    """The Literal fields that pick ``model`` out of a discriminated union."""
    return {
        name: typing.get_args(info.annotation)[0]
        for name, info in model.model_fields.items()
        if typing.get_origin(info.annotation) is Literal and len(typing.get_args(info.annotation)) == 1
    }


def _sample(annotation: Any) -> Any:
    """A valid value for a required field (the first member that has one)."""
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if _is_model(member):
            return _minimal(member)
        if origin is Literal:
            return typing.get_args(member)[0]
        if member is bool:
            return False
        if member is int:
            return 1
        if member is float:
            return 0.5
        if member is str:
            return "x"
        if origin in (list, tuple):
            return [_sample(typing.get_args(member)[0])]
        if origin is dict:
            return {"x": _sample(typing.get_args(member)[1])}
    raise AssertionError(f"no sample value for {annotation!r}")


# Required fields whose valid values depend on each other (one value more than boundaries),
# and fields a model needs although none of them is required alone (one of several ways to say it).
CROSS_FIELD_SAMPLES: dict[str, dict[str, Any]] = {
    "PiecewiseSchedule": {"boundaries": [1], "values": [0.5, 0.25]},
    "NpzData": {"path": "x.npz"},
    "CsvData": {"path": "x.csv", "features": ["a"], "target": "b"},
    "ImageFolderData": {"path": "images"},
}


def _minimal(model: type[BaseModel]) -> dict[str, Any]:
    """The required fields of ``model`` with valid values, and its discriminator tag."""
    data = {name: _sample(info.annotation) for name, info in model.model_fields.items() if info.is_required()}
    return {**data, **CROSS_FIELD_SAMPLES.get(model.__name__, {}), **_tag(model)}


Step = tuple[str, Any, type[BaseModel]]  # field name, list index or mapping key (or None), model there


@dataclass(frozen=True)
class NumericField:
    """One numeric field: the way to its model from the document root, and what it holds."""

    model: type[BaseModel]
    field: str
    trail: tuple[Step, ...]
    kind: type  # int or float
    in_list: bool  # a list of numbers (or a number or a list, as kernel sizes are)
    in_dict: bool = False  # the values of a mapping (class weights, loss weights)
    text_keys: bool = False  # the mapping's keys are names (loss weights by output), not integers

    @property
    def dotted(self) -> str:
        parts: list[Any] = []
        for name, key, _ in self.trail:
            parts += [name] if key is None else [name, key]
        text = ""
        for part in (*parts, self.field):
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text.lstrip(".")

    def __str__(self) -> str:
        return f"{self.model.__name__}.{self.field}"


def _numeric_fields() -> list[NumericField]:
    found: dict[tuple, NumericField] = {}

    def walk(model: type[BaseModel], trail: tuple[Step, ...]) -> None:
        if any(step[2] is model for step in trail[:-1]):
            return  # a model inside itself: already walked
        for name, info in model.model_fields.items():
            for member in _members(info.annotation):
                origin = typing.get_origin(member)
                if _is_model(member):
                    walk(member, (*trail, (name, None, member)))
                elif origin in (list, tuple, dict):
                    element = typing.get_args(member)[-1 if origin is dict else 0]
                    key = "x" if origin is dict else 0
                    for inner in _members(element):
                        if _is_model(inner):
                            walk(inner, (*trail, (name, key, inner)))
                        elif inner in (int, float):
                            text_keys = origin is dict and typing.get_args(member)[0] is str
                            field = NumericField(model, name, trail, inner, True, origin is dict, text_keys)
                            found.setdefault((model, name, True), field)
                elif member in (int, float):
                    found.setdefault((model, name, False), NumericField(model, name, trail, member, False))

    walk(Spec, ())
    return list(found.values())  # a model reached by several ways is tested at the first


NUMERIC_FIELDS = _numeric_fields()


def good_value(target: NumericField) -> Any:
    """A valid value of the field: its default where that is a plain number (fields bound by
    others, as a data set's ``min_length <= max_length``), else 1 or 0.5."""
    default = target.model.model_fields[target.field].default
    if not target.in_list and isinstance(default, (int, float)) and not isinstance(default, bool):
        return default
    return 1 if target.kind is int else 0.5


def _document(target: NumericField, value: Any) -> dict[str, Any]:
    """A minimal valid spec whose ``target`` field holds ``value`` (in a list where it is one)."""
    document = _minimal(Spec)
    holder = document
    for name, key, model in target.trail:
        inner = _minimal(model)
        holder[name] = inner if key is None else ([inner] if key == 0 else {key: inner})
        holder = inner
    good = good_value(target)
    holder[target.field] = [good, value] if target.in_list else value  # two: a pair is a list of two
    if target.in_dict:
        holder[target.field] = {"a": good, "b": value} if target.text_keys else {0: good, 1: value}
    if target.model.__name__ == "PiecewiseSchedule" and target.field == "boundaries":
        holder["boundaries"] = [0, value]  # increasing with the good value 1
        holder["values"] = [0.5, 0.25, 0.125]  # one more than the two boundaries
    return document


BAD_VALUES = {
    int: [True, 10.0, 2.5],
    float: [True, math.inf, -math.inf, math.nan],
}
SHOWN = {True: "true", 10.0: "10.0", 2.5: "2.5", math.inf: ".inf", -math.inf: "-.inf"}


CASES = [
    pytest.param(target, value, id=f"{target}{'[]' if target.in_list else ''}={SHOWN.get(value, '.nan')}")
    for target in NUMERIC_FIELDS
    for value in BAD_VALUES[target.kind]
]


def test_the_walk_finds_the_numeric_fields():
    names = {str(f) for f in NUMERIC_FIELDS}
    expected = {
        "Input.shape",
        "Dense.units",
        "Conv2D.kernel_size",
        "Reshape.target_shape",
        "Concatenate.axis",
        "Dropout.rate",
        "Initializer.stddev",
        "Regularizer.l2",
        "Adam.learning_rate",
        "StepSchedule.step_size",
        "Training.seed",
        "RegressionData.noise",
        "LSTM.units",
    }
    assert expected <= names, expected - names
    assert len(NUMERIC_FIELDS) > 60


def test_minimal_documents_are_valid():
    """The carrier documents are valid with a good value, so a refusal is the bad value's."""
    for target in NUMERIC_FIELDS:
        document = _document(target, good_value(target))
        Spec.model_validate(document)


@pytest.mark.parametrize(("target", "value"), CASES)
def test_numeric_field_refuses(target: NumericField, value: Any):
    text = yaml.safe_dump(_document(target, value), sort_keys=False)
    with pytest.raises(SpecError) as caught:
        load(text)
    problems = caught.value.problems
    shown = SHOWN.get(value, ".nan")
    assert len(problems) == 1, str(caught.value)  # one mistake, one message (not one per union member)
    (problem,) = problems
    assert problem.line is not None and problem.column is not None, str(problem)
    # the field, or its bad element (by index, or by name in a mapping with text keys)
    named = (f"{target.dotted}: expected ", f"{target.dotted}[1]: expected ", f"{target.dotted}.b: expected ")
    assert problem.message.startswith(named), str(problem)
    assert shown in problem.message.split(", received ", 1)[1], str(problem)


def test_legal_numbers_are_still_read():
    """Whole numbers stand for reals, and YAML 1.1's ``1e-3`` (read as text) is still a number."""
    spec = load(
        "name: n\ninputs: {x: {shape: [4]}}\nlayers:\n  - {type: dense, units: 2}\n"
        "training: {loss: mse, optimizer: {type: sgd, learning_rate: 1, momentum: 9e-1}}\n"
    )
    assert spec.training.optimizer.learning_rate == 1.0
    assert isinstance(spec.training.optimizer.learning_rate, float)
    assert spec.training.optimizer.momentum == 0.9


def test_every_bad_number_is_reported_at_once():
    text = (
        "name: n\ninputs: {x: {shape: [4, 4, 1]}}\nlayers:\n"
        "  - {type: conv2d, filters: true, kernel_size: [3, 2.0]}\n"
        "  - {type: flatten}\n"
        "  - {type: dense, units: 10.0, kernel_initializer: {type: normal, stddev: .nan}}\n"
        "training: {loss: mse, epochs: 1.5, optimizer: {type: adam, learning_rate: .inf}}\n"
    )
    with pytest.raises(SpecError) as caught:
        load(text)
    assert [str(p) for p in caught.value.problems] == [
        "<spec>:4:29: layers[0].filters: expected a valid integer, received true",
        "<spec>:4:48: layers[0].kernel_size: expected a positive integer or a list of two, received [3, 2.0]",
        "<spec>:6:26: layers[2].units: expected a valid integer, received 10.0",
        "<spec>:6:75: layers[2].kernel_initializer.stddev: expected a finite number, received .nan",
        "<spec>:7:31: training.epochs: expected a valid integer, received 1.5",
        "<spec>:7:75: training.optimizer.learning_rate: expected a finite number, received .inf",
    ]
