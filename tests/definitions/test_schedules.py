"""Learning-rate schedules: hand-computed values and Keras' schedules."""

import math

import keras
import pytest

from archspec.definitions.schedules import learning_rate
from archspec.errors import UsageError


def test_constant_and_none():
    assert learning_rate(None, 0.1, 123) == 0.1
    assert learning_rate({"type": "constant"}, 0.1, 123) == 0.1


def test_step_decay_by_hand():
    schedule = {"type": "step", "step_size": 10, "gamma": 0.5}
    assert [learning_rate(schedule, 0.8, step) for step in (0, 9, 10, 19, 20, 35)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.1]


def test_exponential_by_hand():
    smooth = {"type": "exponential", "decay_rate": 0.5, "decay_steps": 4}
    stairs = {**smooth, "staircase": True}
    assert learning_rate(smooth, 1.0, 0) == 1.0
    assert learning_rate(smooth, 1.0, 2) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert learning_rate(smooth, 1.0, 8) == 0.25
    assert [learning_rate(stairs, 1.0, step) for step in (0, 3, 4, 7, 8)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_cosine_by_hand():
    schedule = {"type": "cosine", "decay_steps": 100, "alpha": 0.1}
    assert learning_rate(schedule, 2.0, 0) == 2.0
    assert learning_rate(schedule, 2.0, 50) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1), rel=1e-15)
    assert learning_rate(schedule, 2.0, 100) == pytest.approx(0.2, rel=1e-15)
    assert learning_rate(schedule, 2.0, 1000) == pytest.approx(0.2, rel=1e-15)
    warm = {"type": "cosine", "decay_steps": 100, "warmup_steps": 10}
    assert [learning_rate(warm, 1.0, step) for step in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert learning_rate(warm, 1.0, 60) == pytest.approx(0.5, rel=1e-15)
    assert learning_rate(warm, 1.0, 110) == pytest.approx(0.0, abs=1e-16)


@pytest.mark.parametrize(
    "schedule, keras_schedule",
    [
        (
            {"type": "exponential", "decay_rate": 0.9, "decay_steps": 7},
            keras.optimizers.schedules.ExponentialDecay(0.3, decay_steps=7, decay_rate=0.9),
        ),
        (
            {"type": "exponential", "decay_rate": 0.9, "decay_steps": 7, "staircase": True},
            keras.optimizers.schedules.ExponentialDecay(0.3, decay_steps=7, decay_rate=0.9, staircase=True),
        ),
        (
            {"type": "cosine", "decay_steps": 40, "alpha": 0.05},
            keras.optimizers.schedules.CosineDecay(0.3, decay_steps=40, alpha=0.05),
        ),
        (
            {"type": "cosine", "decay_steps": 40, "alpha": 0.05, "warmup_steps": 8},
            keras.optimizers.schedules.CosineDecay(0.0, decay_steps=40, alpha=0.05, warmup_target=0.3, warmup_steps=8),
        ),
    ],
)
def test_matches_keras(schedule, keras_schedule):
    for step in range(60):
        expected = float(keras_schedule(step))
        assert learning_rate(schedule, 0.3, step) == pytest.approx(expected, rel=1e-6, abs=1e-9), step


@pytest.mark.parametrize(
    "schedule, message",
    [
        ({"type": "linear"}, "expected a schedule type among"),
        ({"type": "step", "gamma": 0.5}, "missing: \\['step_size'\\]"),
        ({"type": "cosine", "decay_steps": 10, "min_lr": 0.0}, "unknown: \\['min_lr'\\]"),
        ({"type": "cosine", "decay_steps": 0}, "expected decay_steps > 0"),
        ({"type": "cosine", "decay_steps": 5, "warmup_steps": -1}, "expected warmup_steps >= 0"),
    ],
)
def test_bad_schedules_are_refused(schedule, message):
    with pytest.raises(UsageError, match=message):
        learning_rate(schedule, 0.1, 0)
