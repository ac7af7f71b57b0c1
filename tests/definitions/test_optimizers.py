"""Optimizer definitions: names, option defaults and checks, and the canonical slot names."""

import pytest

from archspec.definitions.optimizers import resolve_options, state_slots
from archspec.errors import UsageError


def test_slot_names_are_canonical():
    assert state_slots("sgd", {}) == ()
    assert state_slots("sgd", {"momentum": 0.9}) == ("momentum",)
    assert state_slots("adam", {}) == ("m", "v")
    assert state_slots("adamw", {}) == ("m", "v")
    assert state_slots("rmsprop", {}) == ("square_avg",)
    assert state_slots("rmsprop", {"momentum": 0.5}) == ("square_avg", "momentum")
    assert state_slots("adadelta", {}) == ("square_avg", "acc_delta")


def test_defaults_and_required_learning_rate():
    assert resolve_options("adam", {}) == {
        "lr": 1e-3,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-8,
        "weight_decay": 0.0,
    }
    assert resolve_options("adamw", {})["weight_decay"] == 0.01
    assert resolve_options("rmsprop", {})["lr"] == 1e-2
    assert resolve_options("adadelta", {})["lr"] == 1.0
    with pytest.raises(UsageError, match="expected the option 'lr'"):
        resolve_options("sgd", {})


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("lion", {}, "expected an optimizer among"),
        ("adam", {"betas": (0.9, 0.99)}, "received unknown: \\['betas'\\]"),
        ("sgd", {"nesterov": True}, "expected momentum > 0 with nesterov=True"),
        ("adam", {"beta_1": 1.0}, "expected beta_1 < 1"),
        ("sgd", {"momentum": -0.1}, "expected momentum >= 0"),
    ],
)
def test_bad_options_are_refused(name, options, message):
    with pytest.raises(UsageError, match=message):
        state_slots(name, options)
