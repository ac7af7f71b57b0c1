"""Finding the MNIST files (argument, environment, cache), the missing-data message, bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from archspec.data import MNIST_FILES, load_mnist, locate_mnist, read_mnist
from archspec.errors import DataError, UsageError


def test_explicit_dir_and_its_mnist_subfolder(clean_env, fake_mnist):
    direct = fake_mnist(clean_env / "direct")
    nested = fake_mnist(clean_env / "nested" / "mnist")
    assert locate_mnist(direct)["t10k-images-idx3-ubyte"] == direct / "t10k-images-idx3-ubyte.gz"
    expected = {nested / f"{name}.gz" for name in MNIST_FILES}
    assert set(locate_mnist(clean_env / "nested").values()) == expected


def test_environment_variable_then_cache(clean_env, fake_mnist, monkeypatch):
    cached = fake_mnist(clean_env / "cache" / "archspec" / "mnist")
    assert locate_mnist()["train-images-idx3-ubyte"].parent == cached
    from_env = fake_mnist(clean_env / "env")
    monkeypatch.setenv("ARCHSPEC_DATA_DIR", str(from_env))
    assert locate_mnist()["train-images-idx3-ubyte"].parent == from_env


def test_home_cache_when_xdg_unset(clean_env, fake_mnist, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    home_cache = fake_mnist(clean_env / "home" / ".cache" / "archspec" / "mnist")
    assert locate_mnist()["train-labels-idx1-ubyte"].parent == home_cache


def test_explicit_dir_is_the_only_place_searched(clean_env, fake_mnist, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_DATA_DIR", str(fake_mnist(clean_env / "env")))
    with pytest.raises(DataError, match="empty"):
        locate_mnist(clean_env / "empty")


def test_raw_file_preferred_over_gz(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "both")
    fake_mnist(folder, gz=False, seed=1)
    assert all(path.suffix != ".gz" for path in locate_mnist(folder).values())


def test_missing_data_says_where_it_looked_and_what_to_run(clean_env, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_DATA_DIR", str(clean_env / "env"))
    with pytest.raises(DataError) as error:
        load_mnist()
    message = str(error.value)
    looked = [
        clean_env / "env",
        clean_env / "env" / "mnist",
        clean_env / "cache" / "archspec",
        clean_env / "cache" / "archspec" / "mnist",
    ]
    for folder in looked:
        assert str(folder) in message
    assert "archspec data fetch mnist" in message
    assert "ARCHSPEC_DATA_DIR" in message and "--data-dir" in message
    assert "\n" not in message


def test_partial_folder_lists_missing_files(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "partial")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=f"{folder} lacks t10k-labels-idx1-ubyte\\)"):
        locate_mnist(folder)


def test_fake_files_load_through_every_option(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "fake", n_train=20, n_test=5)
    splits = load_mnist(folder, view="image", validation_split=0.25, normalization="none")
    assert splits.train[0].shape == (15, 28, 28, 1) and splits.validation[0].shape == (5, 28, 28, 1)
    assert splits.test[1].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("view", "grid"),
        ("normalization", "minmax"),
        ("validation_split", 1.0),
        ("validation_split", -0.1),
    ],
)
def test_bad_arguments(clean_env, fake_mnist, argument, value):
    folder = fake_mnist(clean_env / "fake")
    with pytest.raises(UsageError, match=f"received {argument}="):
        load_mnist(folder, **{argument: value})


def test_unknown_view_lists_valid_names(clean_env, fake_mnist):
    with pytest.raises(UsageError, match="one of 'flat', 'image', 'sequence'"):
        load_mnist(fake_mnist(clean_env / "fake"), view="grid")


def test_corrupt_file_is_named(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "corrupt")
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match=f"^{bad}: expected a complete gzip stream"):
        load_mnist(folder)


def test_label_count_mismatch(clean_env, fake_mnist, to_idx):
    folder = fake_mnist(clean_env / "mismatch", n_train=12)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(to_idx(np.zeros(11, dtype=np.uint8))))
    with pytest.raises(DataError, match=f"^{labels}: expected 12 labels.*received 11"):
        read_mnist(folder)


def test_out_of_range_label(clean_env, fake_mnist, to_idx):
    folder = fake_mnist(clean_env / "label", n_test=5)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(to_idx(np.array([0, 1, 2, 3, 10], dtype=np.uint8))))
    with pytest.raises(DataError, match=r"expected labels 0\.\.9, received 10"):
        read_mnist(folder)


def test_wrong_image_size(clean_env, fake_mnist, to_idx):
    folder = fake_mnist(clean_env / "size", n_test=5)
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(to_idx(np.zeros((5, 27, 28), dtype=np.uint8))))
    expected = r"expected uint8 images of shape \(N, 28, 28\).*\(5, 27, 28\)"
    with pytest.raises(DataError, match=expected):
        read_mnist(folder)


def test_changed_files_are_read_again(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "changing", n_train=12)
    assert read_mnist(folder)[0][0].shape[0] == 12
    fake_mnist(folder, n_train=14)
    assert read_mnist(folder)[0][0].shape[0] == 14
