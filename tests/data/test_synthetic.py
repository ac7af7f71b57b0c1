"""Synthetic regression and binary sets: determinism, the generating model, splits, arguments."""

from __future__ import annotations

import numpy as np
import pytest

from archspec.data import load_binary, load_regression, make_binary, make_regression
from archspec.errors import UsageError


@pytest.mark.parametrize("make", [make_regression, make_binary])
def test_same_seed_same_data_other_seed_other_data(make):
    first, again, other = make(seed=3), make(seed=3), make(seed=4)
    for field in ("x", "y", "weights", "bias"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.x, other.x)
    assert first.x.shape == (1000, 8) and first.y.shape == (1000, 1)
    assert first.x.dtype == first.y.dtype == np.float64


def test_regression_follows_its_linear_model():
    exact = make_regression(n_samples=50, n_features=3, noise=0.0, seed=1)
    np.testing.assert_allclose(exact.y, exact.x @ exact.weights + exact.bias, rtol=0, atol=1e-12)
    noisy = make_regression(n_samples=20000, n_features=3, noise=0.5, seed=1)
    residual = noisy.y - noisy.x @ noisy.weights - noisy.bias
    assert residual.std() == pytest.approx(0.5, rel=0.03)
    # The noise is drawn after x, so the same seed gives the same x at any noise level.
    quiet, loud = make_regression(noise=0.0, seed=2), make_regression(noise=1.0, seed=2)
    np.testing.assert_array_equal(quiet.x, loud.x)


def test_binary_follows_its_logistic_model():
    exact = make_binary(n_samples=500, n_features=4, noise=0.0, seed=0)
    np.testing.assert_array_equal(exact.y, (exact.x @ exact.weights + exact.bias > 0) * 1.0)
    data = make_binary(n_samples=20000, n_features=4, noise=0.5, seed=0)
    assert set(np.unique(data.y).tolist()) == {0.0, 1.0}
    probability = 1 / (1 + np.exp(-(data.x @ data.weights + data.bias) / 0.5))
    # Labels are Bernoulli(probability): their mean, and their mean where p is near 1/2, agree.
    assert data.y.mean() == pytest.approx(probability.mean(), abs=0.01)
    uncertain = np.abs(probability - 0.5) < 0.1
    assert data.y[uncertain].mean() == pytest.approx(probability[uncertain].mean(), abs=0.05)


def test_default_splits_are_in_order_80_0_20():
    splits = load_regression(seed=5)
    data = make_regression(seed=5)
    assert len(splits.train[0]) == 800 and splits.validation is None and len(splits.test[0]) == 200
    np.testing.assert_array_equal(splits.train[0], data.x[:800])
    np.testing.assert_array_equal(splits.test[1], data.y[800:])
    assert splits.num_classes is None and splits.input_shape == (8,)


def test_splits_with_validation_are_train_validation_test_in_order():
    splits = load_binary(validation_split=0.1, test_split=0.25, seed=5)
    data = make_binary(seed=5)
    assert [len(pair[0]) for pair in splits.as_dict().values()] == [650, 100, 250]
    np.testing.assert_array_equal(splits.validation[0], data.x[650:750])
    np.testing.assert_array_equal(splits.test[1], data.y[750:])


def test_binary_splits_and_empty_splits():
    splits = load_binary(n_samples=10, n_features=2, validation_split=0.0, test_split=0.0)
    assert splits.num_classes == 2 and splits.validation is None and splits.test is None
    assert splits.train[0].shape == (10, 2)


@pytest.mark.parametrize(
    ("call", "received"),
    [
        (lambda: make_regression(n_samples=0), "n_samples=0"),
        (lambda: make_regression(n_features=True), "n_features=True"),
        (lambda: make_regression(noise=-1.0), "noise=-1.0"),
        (lambda: make_regression(noise=float("nan")), "noise=nan"),
        (lambda: make_binary(noise=-0.5), "noise=-0.5"),
        (lambda: make_binary(seed=-1), "seed=-1"),
        (lambda: load_regression(test_split=1.5), "test_split=1.5"),
    ],
)
def test_bad_arguments_name_the_argument(call, received):
    with pytest.raises(UsageError, match=f", received {received}$"):
        call()


def test_fractions_must_leave_training_samples():
    with pytest.raises(UsageError, match=r", received 5 validation \+ 5 test of n_samples=10"):
        load_regression(n_samples=10, validation_split=0.5, test_split=0.5)
