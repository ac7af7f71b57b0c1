"""problems_from_validation_error against toy models shaped like archspec's spec."""

from typing import Annotated, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archspec.errors import Problem, SpecError
from archspec.spec.diagnostics import problems_from_validation_error
from archspec.spec.source import parse_yaml

STRICT = ConfigDict(extra="forbid", frozen=True)


class Dense(BaseModel):
    model_config = STRICT
    type: Literal["dense"]
    units: int = Field(gt=0)
    activation: Literal["relu", "tanh", "sigmoid"] = "relu"

    @field_validator("units")
    @classmethod
    def _not_huge(cls, units: int) -> int:
        if units > 10_000:
            raise ValueError(f"expected at most 10000 units, received {units}")
        return units


class Dropout(BaseModel):
    model_config = STRICT
    type: Literal["dropout"]
    rate: float = Field(ge=0, lt=1)


class Adam(BaseModel):
    model_config = STRICT
    type: Literal["adam"]
    learning_rate: float = Field(gt=0, alias="lr")


class SGD(BaseModel):
    model_config = STRICT
    type: Literal["sgd"]
    momentum: float = 0.0


class Input(BaseModel):
    model_config = STRICT
    shape: list[int]


class Training(BaseModel):
    model_config = STRICT
    epochs: int = Field(gt=0)
    optimizer: Annotated[Adam | SGD, Field(discriminator="type")]
    batch_size: int | None = None


class Spec(BaseModel):
    model_config = STRICT
    name: str
    inputs: dict[str, Input]
    layers: list[Annotated[Dense | Dropout, Field(discriminator="type")]]
    training: Training

    @model_validator(mode="after")
    def _has_layers(self) -> "Spec":
        if not self.layers:
            raise ValueError("expected at least one layer, received none")
        return self


VALID = """\
name: mlp
inputs:
  x: {shape: [4]}
layers:
  - type: dense
    units: 8
  - type: dropout
    rate: 0.1
training:
  epochs: 2
  optimizer:
    type: adam
    lr: 0.001
"""


def problems(source: str) -> list[Problem]:
    document = parse_yaml(source, "net.yaml")
    with pytest.raises(ValidationError) as caught:
        Spec.model_validate(document.data)
    return problems_from_validation_error(caught.value, document, Spec)


def only(source: str) -> str:
    (problem,) = problems(source)
    return str(problem)


def test_valid_document_validates():
    spec = Spec.model_validate(parse_yaml(VALID).data)
    assert spec.training.optimizer.learning_rate == 0.001


def test_constraint_error_names_path_without_tag():
    assert only(VALID.replace("units: 8", "units: -3")) == (
        "net.yaml:6:12: layers[0].units: expected a positive integer, received -3"
    )


def test_type_error_says_expected_and_received():
    assert only(VALID.replace("epochs: 2", "epochs: many")) == (
        "net.yaml:10:11: training.epochs: expected a valid integer, received 'many'"
    )


def test_unknown_field_is_placed_on_key_with_suggestion():
    assert only(VALID.replace("units: 8", "unitz: 8\n    units: 8")) == (
        "net.yaml:6:5: layers[0]: unknown field 'unitz' in dense layer; did you mean 'units'?"
    )


def test_unknown_field_without_close_match_lists_allowed_fields():
    assert only(VALID.replace("name: mlp", "name: mlp\ncolour: red")) == (
        "net.yaml:2:1: unknown field 'colour' in spec; allowed fields: 'name', 'inputs', 'layers', 'training'"
    )


def test_unknown_field_uses_aliases_of_the_chosen_variant():
    assert only(VALID.replace("lr: 0.001", "lr: 0.001\n    lrr: 1")) == (
        "net.yaml:14:5: training.optimizer: unknown field 'lrr' in adam optimizer; did you mean 'lr'?"
    )


def test_missing_field_is_placed_on_the_mapping():
    assert only(VALID.replace("    rate: 0.1\n", "")) == (
        "net.yaml:7:5: layers[1]: missing required field 'rate' in dropout layer"
    )


def test_missing_field_of_untagged_model_is_named_by_path():
    assert only(VALID.replace("x: {shape: [4]}", "x: {}")) == ("net.yaml:3:6: inputs.x: missing required field 'shape'")


def test_missing_top_level_field():
    assert only(VALID.replace("name: mlp\n", "")) == "net.yaml:1:1: missing required field 'name' in spec"


def test_unknown_layer_type_suggests_closest():
    assert only(VALID.replace("type: dense", "type: dens")) == (
        "net.yaml:5:11: layers[0]: unknown layer type 'dens'; did you mean 'dense'?"
    )


def test_unknown_type_without_close_match_lists_types():
    assert only(VALID.replace("type: adam", "type: lbfgs")) == (
        "net.yaml:12:11: training.optimizer: unknown optimizer type 'lbfgs'; expected one of 'adam', 'sgd'"
    )


def test_missing_type_tag():
    assert only(VALID.replace("type: dropout\n    rate", "rate")) == (
        "net.yaml:7:5: layers[1]: missing 'type' in layer; expected one of 'dense', 'dropout'"
    )


def test_literal_suggests_closest():
    assert only(VALID.replace("units: 8", "units: 8\n    activation: rleu")) == (
        "net.yaml:7:17: layers[0].activation: expected one of 'relu', 'tanh', 'sigmoid', "
        "received 'rleu'; did you mean 'relu'?"
    )


def test_validator_message_is_used_without_prefix():
    assert only(VALID.replace("units: 8", "units: 20000")) == (
        "net.yaml:6:12: layers[0].units: expected at most 10000 units, received 20000"
    )


def test_model_validator_error_is_placed_at_the_model():
    start = VALID.index("layers:")
    end = VALID.index("training:")
    assert only(VALID[:start] + "layers: []\n" + VALID[end:]) == (
        "net.yaml:1:1: expected at least one layer, received none"
    )


def test_dict_entries_and_list_items_are_named():
    assert only(VALID.replace("shape: [4]", "shape: [4, x]")) == (
        "net.yaml:3:18: inputs.x.shape[1]: expected a valid integer, received 'x'"
    )


def test_wrong_container_kind():
    assert only(VALID.replace("x: {shape: [4]}", "x: 5")) == ("net.yaml:3:6: inputs.x: expected a mapping, received 5")


def test_several_problems_are_reported_sorted_by_position():
    source = (
        VALID.replace("epochs: 2", "epochs: 0")
        .replace("type: dense", "type: dence")
        .replace("rate: 0.1", "rate: 1.5")
        .replace("name: mlp\n", "")
    )
    assert [str(p) for p in problems(source)] == [
        "net.yaml:1:1: missing required field 'name' in spec",
        "net.yaml:4:11: layers[0]: unknown layer type 'dence'; did you mean 'dense'?",
        "net.yaml:7:11: layers[1].rate: expected less than 1, received 1.5",
        "net.yaml:9:11: training.epochs: expected a positive integer, received 0",
    ]


# Hypothesis: whatever the input, parse + validate + diagnose ends in data or a SpecError.


def parse_validate_diagnose(source: str | bytes) -> None:
    try:
        document = parse_yaml(source)
    except SpecError as error:
        assert error.problems and all(isinstance(p, Problem) for p in error.problems)
        return
    try:
        Spec.model_validate(document.data)
    except ValidationError as error:
        found = problems_from_validation_error(error, document, Spec)
        assert len(found) == error.error_count()
        assert all(p.line >= 1 and p.column >= 1 for p in found)


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        insert = draw(st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#,? \n\tab01")), max_size=6))
        text = text[:start] + insert + text[end:]
    return text


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_random_text_is_data_or_spec_error(source):
    parse_validate_diagnose(source)


@FUZZ
@given(st.binary())
def test_random_bytes_are_data_or_spec_error(source):
    parse_validate_diagnose(source)


@FUZZ
@given(mutated_documents())
def test_mutated_documents_are_data_or_spec_error(source):
    parse_validate_diagnose(source)
