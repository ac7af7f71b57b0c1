"""Early stopping, reduce-on-plateau, warm-up and piecewise rates: by hand and against Keras' own."""

import math

import keras
import numpy as np
import pytest

from archspec.definitions.controls import EarlyStopper, PlateauReducer, higher_is_better
from archspec.definitions.schedules import learning_rate, step_rate, warmup_factor
from archspec.spec.training import EarlyStopping, ReduceOnPlateau


class _Optimizer:
    learning_rate = 0.1


class _Model:
    """What Keras' callbacks touch of a model."""

    stop_training = False

    def __init__(self):
        self.optimizer = _Optimizer()

    def get_weights(self):
        return []

    def set_weights(self, weights):
        pass


def _sequences():
    rng = np.random.default_rng(7)
    walks = [np.cumsum(rng.normal(scale=0.05, size=30)) + 1.0 for _ in range(6)]
    # plateaus made of exact repeats and steps just inside / outside min_delta
    walks.append(np.array([1.0, 0.9, 0.9, 0.895, 0.889, 0.95, 0.7, 0.7, 0.71, 0.72, 0.699, 0.73, 0.8, 0.81]))
    return walks


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("patience, min_delta", [(0, 0.0), (2, 0.01), (4, 0.0)])
def test_early_stopping_stops_where_keras_stops(mode, patience, min_delta):
    for values in _sequences():
        options = EarlyStopping(monitor="validation_loss", mode=mode, patience=patience, min_delta=min_delta)
        ours = EarlyStopper(options)
        theirs = keras.callbacks.EarlyStopping(monitor="v", mode=mode, patience=patience, min_delta=min_delta)
        model = _Model()
        theirs.set_model(model)
        theirs.on_train_begin()
        ours_stop = keras_stop = None
        for epoch, value in enumerate(values):
            if ours_stop is None and ours.update(epoch, {"validation_loss": float(value)})[1]:
                ours_stop = epoch
            if keras_stop is None:
                theirs.on_epoch_end(epoch, {"v": float(value)})
                if model.stop_training:
                    keras_stop = epoch
            if ours_stop is not None and keras_stop is not None:
                break
        assert ours_stop == keras_stop, f"{mode} patience {patience}: ours {ours_stop}, keras {keras_stop} on {values}"
        if ours_stop is not None:
            assert ours.best == pytest.approx(float(theirs.best)) and ours.stopped_epoch == ours_stop


@pytest.mark.parametrize(
    "patience, cooldown, min_delta, min_lr", [(0, 0, 0.0, 0.0), (2, 1, 0.01, 0.02), (1, 3, 0.0, 0.0)]
)
def test_plateau_reduces_where_keras_reduces(patience, cooldown, min_delta, min_lr):
    for values in _sequences():
        options = ReduceOnPlateau(
            monitor="validation_loss",
            patience=patience,
            cooldown=cooldown,
            min_delta=min_delta,
            min_lr=min_lr,
            factor=0.5,
        )
        ours = PlateauReducer(options)
        theirs = keras.callbacks.ReduceLROnPlateau(
            monitor="v",
            mode="min",
            patience=patience,
            cooldown=cooldown,
            min_delta=min_delta,
            min_lr=min_lr,
            factor=0.5,
        )
        model = _Model()
        theirs.set_model(model)
        theirs.on_train_begin()
        for epoch, value in enumerate(values):
            rate = max(0.1 * ours.scale, min_lr) if ours.scale != 1.0 else 0.1
            ours.update({"validation_loss": float(value)}, rate)
            theirs.on_epoch_end(epoch, {"v": float(value)})
            expected = float(model.optimizer.learning_rate)
            ours_rate = max(0.1 * ours.scale, min_lr) if ours.scale != 1.0 else 0.1
            assert ours_rate == pytest.approx(expected, rel=1e-12), f"epoch {epoch} of {values}"


def test_state_round_trips_and_resumes_the_same_decisions():
    options = EarlyStopping(monitor="validation_accuracy", patience=2)
    values = [0.5, 0.6, 0.59, 0.61, 0.6, 0.6, 0.6]
    whole, first = EarlyStopper(options), EarlyStopper(options)
    decisions = []
    for e, v in enumerate(values):
        decisions.append(whole.update(e, {"validation_accuracy": v}))
        if decisions[-1][1]:
            break
    for e, v in enumerate(values[:4]):
        first.update(e, {"validation_accuracy": v})
    resumed = EarlyStopper(options)
    resumed.load(first.state())
    assert [resumed.update(e, {"validation_accuracy": v}) for e, v in enumerate(values[4:6], 4)] == decisions[4:]
    assert decisions[5] == (False, True) and whole.best_epoch == 3 and "epoch 6" in whole.reason()


def test_auto_mode():
    assert higher_is_better("validation_accuracy", "auto") and higher_is_better("train_auc", "auto")
    assert not higher_is_better("validation_loss", "auto") and not higher_is_better("validation_accuracy", "min")


def test_warmup_is_linear_from_zero_and_multiplies_every_schedule():
    assert [warmup_factor(s, 4) for s in (0, 1, 2, 4, 10)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    cosine = {"type": "cosine", "decay_steps": 100, "alpha": 0.0}
    for step in (0, 3, 7, 10, 50):
        expected = learning_rate(cosine, 0.2, step) * min(1.0, step / 10)
        assert step_rate(cosine, 0.2, step, warmup_steps=10) == pytest.approx(expected, rel=1e-15)
    assert step_rate(cosine, 0.2, 5, warmup_steps=10) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.05)) / 2)


def test_plateau_scale_and_min_lr():
    assert step_rate(None, 0.1, 3, plateau_scale=0.5, min_lr=0.0) == 0.05
    assert step_rate(None, 0.1, 3, plateau_scale=0.01, min_lr=0.002) == 0.002
    assert step_rate(None, 0.1, 3, plateau_scale=1.0, min_lr=0.5) == 0.1  # min_lr only once reduced


def test_piecewise_matches_keras():
    boundaries, values = [3, 10], [0.5, 0.1, 0.01]
    theirs = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    schedule = {"type": "piecewise", "boundaries": boundaries, "values": values}
    for step in range(15):
        assert learning_rate(schedule, 123.0, step) == pytest.approx(float(theirs(step)), rel=1e-7)
    assert [learning_rate(schedule, 1.0, s) for s in (0, 3, 4, 10, 11)] == [0.5, 0.5, 0.1, 0.1, 0.01]
