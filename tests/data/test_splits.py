"""splits_from_arrays and Splits: accepted forms and each refusal with its message."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from archspec.data import Splits, splits_from_arrays
from archspec.errors import DataError, UsageError


def test_pair_becomes_the_train_split():
    x, y = np.zeros((4, 3), dtype=np.float32), np.arange(4)
    splits = splits_from_arrays((x, y))
    assert splits.train[0] is x and splits.validation is None and splits.test is None
    assert splits.input_shape == (3,) and splits.num_classes is None
    assert repr(splits) == "Splits(train=(x(4, 3) float32, y(4,) int64), num_classes=None)"


def test_dict_of_splits_from_lists():
    splits = splits_from_arrays(
        {"train": ([[1.0, 2.0], [3.0, 4.0]], [0, 1]), "test": ([[5.0, 6.0]], [1])}, num_classes=2
    )
    assert splits.test[0].shape == (1, 2) and splits.validation is None
    assert list(splits.as_dict()) == ["train", "test"]


def test_splits_are_frozen():
    splits = splits_from_arrays((np.zeros((2, 1)), np.zeros(2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        splits.train = None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            (np.zeros((3, 2)), np.zeros(4)),
            "train: expected x and y with the same number of samples, received x has 3, y has 4",
        ),
        (
            (np.zeros((3, 2), dtype=object), np.zeros(3)),
            "train.x: expected a numeric (bool, integer or float) array, received dtype object",
        ),
        (
            (np.zeros((3, 2)), np.array(["a", "b", "c"])),
            "train.y: expected a numeric (bool, integer or float) array, received dtype <U1",
        ),
        ((np.zeros((3, 2), dtype=complex), np.zeros(3)), "received dtype complex128"),
        ((np.zeros(3), np.zeros(3)), "train.x: expected shape (N, ...features), received shape (3,)"),
        ((np.zeros((3, 2)), np.float64(1.0)), "train.y: expected shape (N,) or (N, outputs), received shape ()"),
        ((np.zeros((0, 2)), np.zeros(0)), "train: expected at least one sample, received 0 samples"),
        (
            (np.array([[0.0, 1.0], [np.nan, 2.0], [np.inf, 0.0]]), np.zeros(3)),
            "train.x: expected finite values, received 2 NaN or infinite values, the first at index (1, 0)",
        ),
        (
            {"validation": (np.zeros((1, 1)), np.zeros(1))},
            "expected a 'train' split (x, y), received keys: 'validation'",
        ),
        (
            {"train": (np.zeros((1, 1)), np.zeros(1)), "valid": None},
            "expected split names among 'train', 'validation', 'test', received 'valid'",
        ),
        ({"train": np.zeros((2, 2))}, "train: expected a pair (x, y), received ndarray"),
        (np.zeros((2, 2)), "expected (x, y) or a dict of splits 'train', 'validation', 'test', received ndarray"),
        (
            {"train": (np.zeros((2, 3)), np.zeros(2)), "test": (np.zeros((2, 4)), np.zeros(2))},
            "test.x: expected per-sample shape (3,) as in train, received (4,)",
        ),
        (
            {"train": (np.zeros((2, 3)), np.zeros((2, 1))), "validation": (np.zeros((2, 3)), np.zeros(2))},
            "validation.y: expected per-sample shape (1,) as in train, received ()",
        ),
    ],
)
def test_refusals(data, expected):
    with pytest.raises(DataError) as error:
        splits_from_arrays(data)
    assert expected in str(error.value)


def test_labels_must_fit_num_classes():
    x = np.zeros((3, 2))
    expected = r"train.y: expected class labels 0\.\.2, received 3 at index \(2,\)"
    with pytest.raises(DataError, match=expected):
        splits_from_arrays((x, np.array([0, 2, 3])), num_classes=3)
    with pytest.raises(DataError, match=r"received 0.5 at index \(1, 0\)"):
        splits_from_arrays((x, np.array([[0.0], [0.5], [1.0]])), num_classes=2)
    with pytest.raises(UsageError, match="received num_classes=1"):
        splits_from_arrays((x, np.zeros(3)), num_classes=1)


def test_splits_checks_direct_construction():
    with pytest.raises(DataError, match="train.x: expected a numpy array, received list"):
        Splits(train=([[1.0]], np.zeros(1)))
