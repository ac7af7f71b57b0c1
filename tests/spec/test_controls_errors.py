"""Bad training controls are spec errors located at the value at fault, all reported at once."""

import numpy as np
import pytest

import archspec
from archspec.errors import SpecError, UsageError

BASE = """\
name: t
inputs: {x: {shape: [784]}}
layers: [{type: dense, units: 10, activation: softmax}]
data: {dataset: mnist, validation_split: 0.1}
training:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
"""


def problems(extra: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        archspec.load(BASE + extra)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    "extra, where, message",
    [
        ("  early_stopping: {patience: -1}\n", "<spec>:8:", "patience: expected a non-negative integer, received -1"),
        ("  reduce_on_plateau: {patience: -2}\n", "<spec>:8:", "expected a non-negative integer, received -2"),
        ("  clip_norm: 0\n", "<spec>:8:14", "training.clip_norm: expected a positive number, received 0"),
        ("  clip_value: -1.0\n", "<spec>:8:", "training.clip_value: expected a positive number"),
        ("  accumulate_steps: 0\n", "<spec>:8:", "training.accumulate_steps"),
        ("  warmup_steps: -5\n", "<spec>:8:", "training.warmup_steps"),
        ("  reduce_on_plateau: {factor: 1.5}\n", "<spec>:8:", "factor"),
        (
            "  schedule: {type: piecewise, boundaries: [10, 5], values: [0.1, 0.01, 0.001]}\n",
            "<spec>:8:",
            "expected strictly increasing boundaries, received [10, 5]",
        ),
        (
            "  schedule: {type: piecewise, boundaries: [10], values: [0.1, 0.01, 0.001]}\n",
            "<spec>:8:",
            "expected one value more than boundaries (2), received 3",
        ),
        (
            "  early_stopping: {monitor: validation_acuracy}\n",
            "<spec>:8:29",
            "training.early_stopping.monitor: expected a history key the run will have (loss, learning_rate, "
            "train_accuracy, validation_loss, validation_accuracy, test_loss, test_accuracy), received "
            "'validation_acuracy'; did you mean 'validation_accuracy'?",
        ),
        (
            "  class_weight: {0: 1.0, 10: 2.0}\n",
            "<spec>:8:30",
            "training.class_weight: expected classes 0 to 9 (the output has 10), received class 10",
        ),
    ],
)
def test_a_bad_control_is_located(extra, where, message):
    found = problems(extra)
    assert any(p.startswith(where) and message in p for p in found), found


def test_every_control_problem_is_reported_at_once():
    found = problems("  class_weight: {11: 2.0}\n  reduce_on_plateau: {monitor: validation_f1}\n")
    assert len(found) == 2 and "class 11" in found[0] and "'validation_f1'" in found[1], found


def test_a_monitor_needs_the_split_the_data_section_gives():
    text = BASE.replace(", validation_split: 0.1", "") + "  early_stopping: {monitor: validation_loss}\n"
    with pytest.raises(SpecError) as caught:
        archspec.load(text)
    assert "no validation_split, so there is no validation split" in str(caught.value.problems[0])


def test_class_weight_needs_a_classification_loss():
    text = """\
name: r
inputs: {x: {shape: [8]}}
layers: [{type: dense, units: 1}]
training: {loss: mse, class_weight: {0: 2.0}}
"""
    with pytest.raises(SpecError) as caught:
        archspec.load(text)
    assert "<spec>:4:" in str(caught.value.problems[0]) and "expected a classification loss, received mse" in str(
        caught.value.problems[0]
    )


SMALL = """\
name: s
inputs: {x: {shape: [4]}}
layers: [{type: dense, units: 3, activation: softmax}]
training: {loss: sparse_categorical_crossentropy, batch_size: 4, epochs: 2, %s}
"""


def test_a_monitor_the_run_will_not_have_is_refused_before_training():
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(20, 4)), rng.integers(0, 3, 20))
    spec = SMALL % "early_stopping: {monitor: validation_loss}"
    with pytest.raises(UsageError, match="training.early_stopping.monitor: expected a history key this run will have"):
        archspec.train(spec, backend="torch", data=data)
    with pytest.raises(UsageError, match="evaluate_every_epoch is off"):
        archspec.train(spec, backend="torch", data={"train": data, "validation": data}, evaluate_every_epoch=False)


def test_accumulated_batches_must_each_feed_every_worker():
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(21, 4)), rng.integers(0, 3, 21))  # batches of 4: the last holds 1 sample
    with pytest.raises(UsageError, match="at least one sample per worker"):
        archspec.train(SMALL % "accumulate_steps: 2", backend="torch", data=data, workers=2)


def test_bad_sample_weights_are_refused():
    from archspec.errors import DataError

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    spec = SMALL % "seed: 0"
    with pytest.raises(DataError, match="train sample weights finite and >= 0"):
        archspec.train(spec, backend="torch", data=(x, y, -np.ones(20)))
    with pytest.raises(DataError, match="one train sample weight per sample"):
        archspec.train(spec, backend="torch", data=(x, y, np.ones(19)))
