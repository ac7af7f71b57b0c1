"""load_dataset: configs for every data set, seeds, and refused configs; numpy-only imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archspec.data import DATASET_NAMES, dataset_options, load_dataset, load_mnist, make_regression
from archspec.errors import UsageError


def test_mnist_config(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "fake", n_train=10)
    config = {
        "dataset": "mnist",
        "view": "sequence",
        "normalization": "none",
        "validation_split": 0.2,
    }
    splits = load_dataset(config, data_dir=folder)
    expected = load_mnist(folder, view="sequence", normalization="none", validation_split=0.2)
    np.testing.assert_array_equal(splits.validation[0], expected.validation[0])
    assert splits.input_shape == (28, 28) and splits.num_classes == 10


def test_synthetic_seed_from_argument_unless_config_has_one():
    config = {
        "dataset": "regression",
        "n_samples": 20,
        "n_features": 3,
        "noise": 0.0,
        "validation_split": 0.1,
        "test_split": 0.0,
    }
    seeded = load_dataset(config, seed=7)
    np.testing.assert_array_equal(seeded.train[0], make_regression(20, 3, 0.0, seed=7).x[:18])
    pinned = load_dataset({**config, "seed": 1}, seed=7)
    np.testing.assert_array_equal(pinned.train[0], make_regression(20, 3, 0.0, seed=1).x[:18])


def test_binary_config():
    splits = load_dataset({"dataset": "binary", "n_samples": 100, "validation_split": 0.1})
    assert splits.num_classes == 2 and splits.train[1].shape == (70, 1)
    assert splits.validation[1].shape == (10, 1) and splits.test[1].shape == (20, 1)


def test_options_per_dataset():
    assert DATASET_NAMES == ("binary", "mnist", "regression", "sequences")
    assert dataset_options("mnist") == ("view", "normalization", "validation_split", "inputs", "targets", "seed")
    assert dataset_options("regression") == (
        "n_samples",
        "n_features",
        "noise",
        "validation_split",
        "test_split",
        "seed",
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"dataset": "cifar10"},
            "expected dataset to be one of 'binary', 'mnist', 'regression', 'sequences', received dataset='cifar10'",
        ),
        (
            {"view": "flat"},
            "expected the data config to name a dataset (binary, mnist, regression, sequences), received keys: 'view'",
        ),
        (
            {"dataset": "mnist", "shuffle": True},
            "expected keys of dataset 'mnist' among view, normalization, validation_split, inputs, targets, seed, received 'shuffle'",
        ),
        (
            {"dataset": "regression", "n_samples": "many"},
            "expected n_samples to be a positive integer, received n_samples='many'",
        ),
        (["mnist"], "expected the data config to be a mapping, received list"),
    ],
)
def test_refused_configs(config, expected):
    with pytest.raises(UsageError) as error:
        load_dataset(config)
    assert str(error.value) == expected


def test_data_package_imports_no_framework():
    code = (
        "import sys, archspec.data\n"
        "loaded = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
