"""A training section that does not fit a model's outputs is a spec error, located, all at once:
a loss, weight or metric mapping that names an unknown output or leaves one out, a loss that
does not suit its output, class weights with several outputs, a monitor without its prefix,
MNIST inputs and targets that do not fit the model."""

import pytest

import archspec
from archspec.definitions.controls import history_keys
from archspec.errors import SpecError

MODEL = """\
name: two
inputs:
  image: {shape: [784]}
  noisy: {shape: [784]}
layers:
  - {id: both, type: concatenate, inputs: [image, noisy]}
  - {id: shared, type: dense, units: 16, activation: relu}
  - {id: digit, type: dense, units: 10, activation: softmax, inputs: [shared]}
  - {id: even, type: dense, units: 1, activation: sigmoid, inputs: [shared]}
outputs: [digit, even]
data: {dataset: mnist, validation_split: 0.1, inputs: {image: {}, noisy: {noise: 0.3}}, targets: {digit: digit, even: even}}
training:
"""
GOOD = """\
  loss: {digit: sparse_categorical_crossentropy, even: binary_crossentropy}
  loss_weights: {digit: 1.0, even: 0.5}
  metrics: {digit: [accuracy], even: [auc]}
"""


def problems(training: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        archspec.load(MODEL + training)
    return [str(p) for p in caught.value.problems]


def test_the_good_section_loads():
    spec = archspec.load(MODEL + GOOD)
    assert spec.training.loss_of("even") == "binary_crossentropy"
    assert spec.training.loss_weight_of("even") == 0.5
    assert spec.training.metrics_of("digit") == ["accuracy"]


@pytest.mark.parametrize(
    "training, expected",
    [
        (
            GOOD.replace("even: binary_crossentropy}", "evn: binary_crossentropy}"),
            [
                "<spec>:13:9: training.loss: expected an entry for every output (digit, even), received none for 'even'",
                "<spec>:13:55: training.loss: expected output names of the model (digit, even), received 'evn'; did you mean 'even'?",
            ],
        ),
        (
            GOOD.replace("loss_weights: {digit: 1.0, even: 0.5}", "loss_weights: {digit: 1.0}"),
            [
                "<spec>:14:17: training.loss_weights: expected an entry for every output (digit, even), received none for 'even'"
            ],
        ),
        (
            GOOD.replace("even: [auc]", "head: [auc]"),
            ["<spec>:15:38: training.metrics: expected output names of the model (digit, even), received 'head'"],
        ),
        (
            GOOD.replace("even: binary_crossentropy", "even: sparse_categorical_crossentropy"),
            [
                "<spec>:13:56: output 'even': sparse_categorical_crossentropy expects a softmax (or linear) output, received sigmoid; use binary_crossentropy for one sigmoid unit",
                "<spec>:13:56: output 'even': sparse_categorical_crossentropy expects an output of shape [classes] with at least 2 classes, received [1]",
                "<spec>:13:56: mnist target 'even' is 0 or 1: expected binary_crossentropy, mse or mae, received sparse_categorical_crossentropy",
            ],
        ),
        (
            GOOD.replace("even: [auc]", "even: [mse]"),
            ["<spec>:15:39: output 'even': metric 'mse' is for regression, but the loss is binary_crossentropy"],
        ),
        (
            GOOD + "  class_weight: {0: 2.0}\n",
            [
                "<spec>:16:17: training.class_weight: expected a model with one output (as Keras), received 2 outputs; "
                "weight samples with data=(x, y, sample_weight) instead"
            ],
        ),
        (
            "  loss: binary_crossentropy\n",
            [
                "<spec>:8:5: output 'digit': binary_crossentropy expects a sigmoid (or linear) output with 1 unit, received a softmax output; use sigmoid, or sparse_categorical_crossentropy for classes",
                "<spec>:8:5: output 'digit': binary_crossentropy expects an output of shape [1], received [10]",
                "<spec>:13:9: mnist has 10 classes: expected sparse_categorical_crossentropy or categorical_crossentropy, received binary_crossentropy",
            ],
        ),
    ],
)
def test_mistakes_are_located_and_reported_together(training, expected):
    assert problems(training) == expected


def test_monitors_name_prefixed_keys():
    good = archspec.load(MODEL + GOOD + "  early_stopping: {monitor: validation_digit_accuracy}\n")
    assert good.training.early_stopping.monitor == "validation_digit_accuracy"
    (message,) = problems(GOOD + "  early_stopping: {monitor: validation_accuracy}\n")
    assert message.startswith("<spec>:16:")
    assert (
        "expected a history key the run will have (loss, learning_rate, train_digit_loss, train_digit_accuracy"
        in message
    )
    assert "validation_digit_accuracy" in message and "received 'validation_accuracy'" in message


def test_history_keys_with_one_and_with_several_outputs():
    assert history_keys([("", ["accuracy"])], ("train", "test")) == [
        "loss",
        "learning_rate",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
    ]
    assert history_keys([("digit_", ["accuracy"]), ("even_", [])], ("train", "validation")) == [
        "loss",
        "learning_rate",
        "train_digit_loss",
        "train_digit_accuracy",
        "train_even_loss",
        "validation_loss",
        "validation_digit_loss",
        "validation_digit_accuracy",
        "validation_even_loss",
    ]


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            "{dataset: mnist, targets: {digit: digit, even: even}}",
            ["<spec>:11:7: mnist feeds one input; map each model input (image, noisy) to a view in data.inputs"],
        ),
        (
            "{dataset: mnist, inputs: {image: {}, noisy: {view: image}}, targets: {digit: digit, even: even}}",
            ["<spec>:4:18: mnist view 'image' gives samples of shape [28, 28, 1], but input 'noisy' has shape [784]"],
        ),
        (
            "{dataset: mnist, inputs: {image: {}, noisy: {}}, targets: {digit: digit, odd: even}}",
            [
                "<spec>:11:65: expected an entry for every model output (digit, even), missing even",
                "<spec>:11:85: expected a model output (digit, even), received 'odd'",
            ],
        ),
        (
            "{dataset: regression}",
            ["<spec>:11:7: the regression data set feeds one input and one output; this spec has several"],
        ),
    ],
)
def test_mnist_inputs_and_targets_must_fit_the_model(data, expected):
    text = MODEL.replace(MODEL.splitlines()[10], f"data: {data}") + GOOD
    assert problems_of(text) == expected


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        archspec.load(text)
    return [str(p) for p in caught.value.problems]
