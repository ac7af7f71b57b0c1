"""The real MNIST files: known facts, views, normalisations, validation split, gz vs raw."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from archspec.data import load_mnist, locate_mnist, read_mnist, verify_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_raw_arrays_match_known_facts(mnist_dir):
    (train_images, train_labels), (test_images, test_labels) = read_mnist(mnist_dir)
    assert train_images.shape == (60000, 28, 28) and train_images.dtype == np.uint8
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
    assert np.bincount(train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(test_labels).tolist() == TEST_COUNTS
    assert train_images.mean() == pytest.approx(33.3184, abs=5e-5)


def test_arrays_are_cached_and_read_only(mnist_dir):
    first, second = read_mnist(mnist_dir), read_mnist(mnist_dir)
    assert first[0][0] is second[0][0]
    assert not first[0][0].flags.writeable


@pytest.mark.parametrize(
    ("view", "input_shape"),
    [("flat", (784,)), ("image", (28, 28, 1)), ("sequence", (28, 28))],
)
def test_views(mnist_dir, view, input_shape):
    splits = load_mnist(mnist_dir, view=view)
    x, y = splits.train
    assert x.shape == (60000, *input_shape) and x.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert splits.test[0].shape == (10000, *input_shape)
    assert splits.validation is None
    assert splits.num_classes == 10 and splits.input_shape == input_shape
    # Every view is the same row-major pixel order: row r of the sequence is pixels 28r..28r+27.
    raw = read_mnist(mnist_dir)[0][0]
    np.testing.assert_array_equal(x.reshape(60000, 28, 28)[123], raw[123] / np.float32(255))


def test_normalizations(mnist_dir):
    scaled = load_mnist(mnist_dir).train[0]
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert _mean_and_std(scaled)[0] == pytest.approx(33.3184 / 255, abs=1e-6)
    raw = load_mnist(mnist_dir, normalization="none").train[0]
    assert raw.max() == 255.0 and _mean_and_std(raw)[0] == pytest.approx(33.3184, abs=5e-5)
    standard = load_mnist(mnist_dir, normalization="standardize")
    mean, std = _mean_and_std(standard.train[0])
    assert mean == pytest.approx(0.0, abs=1e-6)
    assert std == pytest.approx(1.0, abs=1e-6)
    # The test split uses the training statistics (mean 33.3184, std 78.5675), not its own.
    test_raw = read_mnist(mnist_dir)[1][0]
    expected = (test_raw[0].astype(np.float64) - 33.318421) / 78.567490
    np.testing.assert_allclose(standard.test[0][0].reshape(28, 28), expected, atol=1e-5)


def test_validation_split_takes_the_last_samples(mnist_dir):
    whole = load_mnist(mnist_dir)
    split = load_mnist(mnist_dir, validation_split=0.1)
    assert len(split.train[0]) == 54000 and len(split.validation[0]) == 6000
    np.testing.assert_array_equal(split.validation[0], whole.train[0][54000:])
    np.testing.assert_array_equal(split.validation[1], whole.train[1][54000:])
    np.testing.assert_array_equal(split.train[1], whole.train[1][:54000])
    np.testing.assert_array_equal(split.test[1], whole.test[1])


def test_standardize_uses_only_the_samples_kept_for_training(mnist_dir):
    split = load_mnist(mnist_dir, normalization="standardize", validation_split=0.25)
    assert _mean_and_std(split.train[0])[0] == pytest.approx(0.0, abs=1e-6)
    assert _mean_and_std(split.validation[0])[0] != pytest.approx(0.0, abs=1e-3)


def test_gzipped_and_raw_files_load_the_same(mnist_dir, tmp_path):
    # Write each file in the other form: raw from .gz, .gz from raw.
    for path in locate_mnist(mnist_dir).values():
        if path.suffix == ".gz":
            (tmp_path / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
        else:
            (tmp_path / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes(), 1))
    assert verify_mnist(tmp_path) == tmp_path
    from_raw, from_gz = read_mnist(tmp_path), read_mnist(mnist_dir)
    for raw_pair, gz_pair in zip(from_raw, from_gz):
        for raw_array, gz_array in zip(raw_pair, gz_pair):
            np.testing.assert_array_equal(raw_array, gz_array)


def _mean_and_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation in float64 without a float64 copy of ``x``."""
    flat = x.reshape(-1)
    mean = flat.sum(dtype=np.float64) / flat.size
    mean_square = np.einsum("i,i->", flat, flat, dtype=np.float64) / flat.size
    return float(mean), float(mean_square - mean**2) ** 0.5
