"""Synthetic regression, binary and sequence sets: determinism, the generating model, labels,
splits, arguments."""

from __future__ import annotations

import numpy as np
import pytest

from archspec.data import (
    SEQUENCE_TASKS,
    load_binary,
    load_dataset,
    load_regression,
    load_sequences,
    make_binary,
    make_regression,
    make_sequences,
)
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


# --- sequences ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", SEQUENCE_TASKS)
def test_sequences_are_drawn_from_the_seed(task):
    first, again, other = (make_sequences(task, 300, 3, 9, 7, seed=seed) for seed in (2, 2, 3))
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.y, again.y)
    assert not np.array_equal(first.x, other.x)
    assert first.x.shape == (300, 9) and first.y.shape == (300,)
    assert first.x.dtype == first.y.dtype == np.int64


@pytest.mark.parametrize("task", SEQUENCE_TASKS)
def test_sequences_have_lengths_in_range_tokens_in_vocabulary_and_zero_padding(task):
    data = make_sequences(task, 2000, 3, 9, 7, seed=1)
    assert data.lengths.min() == 3 and data.lengths.max() == 9  # both ends are drawn
    steps = np.arange(9)[None, :]
    valid = steps < data.lengths[:, None]
    assert np.all(data.x[valid] >= 1) and np.all(data.x[valid] <= 6)
    assert np.all(data.x[~valid] == 0)  # padding: zeros at the end only
    assert set(np.unique(data.x[valid]).tolist()) == set(range(1, 7))


def test_sorted_labels_say_whether_the_tokens_are_non_decreasing_and_are_balanced():
    data = make_sequences("sorted", 1001, 2, 8, 5, seed=0)
    for x, y, length in zip(data.x, data.y, data.lengths):
        tokens = x[:length]
        assert y == int(np.all(tokens[1:] >= tokens[:-1]))
    assert data.y.sum() == 500 and data.num_classes == 2  # n // 2 positives, by construction
    # Order is all that tells the classes apart: lengths and token counts match in distribution.
    positive, negative = data.y == 1, data.y == 0
    assert abs(data.lengths[positive].mean() - data.lengths[negative].mean()) < 0.3
    counts = [np.bincount(data.x[mask].ravel(), minlength=5)[1:] / mask.sum() for mask in (positive, negative)]
    assert np.max(np.abs(counts[0] - counts[1])) < 0.15
    # Labels are shuffled, not in blocks.
    assert 0.3 < data.y[:200].mean() < 0.7


def test_token_at_and_count_labels():
    data = make_sequences("token_at", 500, 4, 10, 6, position=3, seed=0)
    np.testing.assert_array_equal(data.y, data.x[:, 3])
    assert data.num_classes == 6 and data.y.min() >= 1
    counts = np.bincount(data.y, minlength=6)[1:]
    assert counts.min() > 500 / 5 * 0.7  # tokens are uniform, so are the classes
    data = make_sequences("count", 500, 4, 10, 6, token=2, seed=0)
    np.testing.assert_array_equal(data.y, (data.x == 2).sum(axis=1))
    assert data.num_classes == 11


def test_sequences_split_in_order_with_classes():
    splits = load_sequences("sorted", 100, 2, 5, 4, validation_split=0.1, test_split=0.2, seed=6)
    data = make_sequences("sorted", 100, 2, 5, 4, seed=6)
    assert [len(pair[0]) for pair in splits.as_dict().values()] == [70, 10, 20]
    np.testing.assert_array_equal(splits.test[0], data.x[80:])
    assert splits.num_classes == 2 and splits.input_shape == (5,)


def test_sequences_through_load_dataset_use_the_run_seed():
    config = {"dataset": "sequences", "task": "token_at", "n_samples": 50, "max_length": 6, "position": 1}
    first, again = load_dataset(config, seed=3), load_dataset(config, seed=3)
    np.testing.assert_array_equal(first.train[0], again.train[0])
    assert not np.array_equal(first.train[0], load_dataset(config, seed=4).train[0])
    assert first.num_classes == 10


@pytest.mark.parametrize(
    ("call", "received"),
    [
        (lambda: make_sequences("sort"), "task='sort'"),
        (lambda: make_sequences(min_length=5, max_length=4), "min_length=5, max_length=4"),
        (lambda: make_sequences("sorted", min_length=1), "min_length=1, vocabulary=10"),
        (lambda: make_sequences("sorted", vocabulary=2), "min_length=4, vocabulary=2"),
        (lambda: make_sequences("token_at", position=4), "position=4"),
        (lambda: make_sequences("count", token=10), "token=10"),
        (lambda: make_sequences(vocabulary=1), "vocabulary=1"),
        (lambda: make_sequences(n_samples=0), "n_samples=0"),
    ],
)
def test_bad_sequence_arguments_name_the_argument(call, received):
    with pytest.raises(UsageError, match=f"received {received}$"):
        call()
