"""The sequences data set in a spec: its options, and the model it fits, checked located."""

import pytest

from archspec.api import load_with_graph
from archspec.errors import SpecError

SPEC = """name: seq
inputs:
  tokens: {shape: [12], dtype: int64}
layers:
  - {type: embedding, input_dim: 8, output_dim: 4}
  - {type: flatten}
  - {type: dense, units: 2, activation: softmax}
training: {loss: sparse_categorical_crossentropy}
data: {dataset: sequences, task: sorted, max_length: 12, vocabulary: 8}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_with_graph(text)
    return [str(problem) for problem in caught.value.problems]


def test_a_sequences_spec_loads_with_its_defaults():
    spec = load_with_graph(SPEC)[0]
    data = spec.data
    assert (data.n_samples, data.min_length, data.max_length, data.vocabulary) == (2000, 4, 12, 8)
    assert data.num_classes == 2


def test_binary_crossentropy_with_one_output_is_accepted_for_sorted():
    text = SPEC.replace("units: 2, activation: softmax", "units: 1, activation: sigmoid")
    load_with_graph(text.replace("sparse_categorical_crossentropy", "binary_crossentropy"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("task: sorted", "task: sorted, position: 2"),
            "<spec>:9:7: data: expected 'position' only with task 'token_at', received task 'sorted'",
        ),
        (
            ("task: sorted", "task: token_at, position: 4"),
            "<spec>:9:7: data: expected position < min_length for task 'token_at' (every sequence has a token there), "
            "received position=4, min_length=4",
        ),
        (
            ("task: sorted", "task: sorted, min_length: 13"),
            "<spec>:9:7: data: expected min_length <= max_length, received min_length=13, max_length=12",
        ),
        (("task: sorted", "task: sortd"), "did you mean 'sorted'?"),
        (
            ("shape: [12]", "shape: [10]"),
            "<spec>:3:19: the sequences data set gives samples of shape [12] (max_length), but input 'tokens' has shape [10]",
        ),
        (
            ("units: 2, activation", "units: 3, activation"),
            "the sequences task 'sorted' with sparse_categorical_crossentropy expects an output of shape [2], received [3]",
        ),
        (
            ("task: sorted", "task: count"),
            "the sequences task 'count' with sparse_categorical_crossentropy expects an output of shape [13], received [2]",
        ),
        (
            ("loss: sparse_categorical_crossentropy", "loss: mse"),
            "the sequences task 'sorted' has 2 classes: expected loss sparse_categorical_crossentropy or "
            "categorical_crossentropy or binary_crossentropy, received mse",
        ),
    ],
)
def test_mistakes_are_located(change, message):
    found = problems(SPEC.replace(*change))
    assert any(problem.endswith(message) for problem in found), found
