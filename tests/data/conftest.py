"""Fixtures for the data tests: the real MNIST copy, tiny fake MNIST files, a clean environment."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from archspec.data import locate_mnist
from archspec.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2].parent / "shared/data/mnist"
_IDX_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 or big-endian int32 array."""
    header = bytes([0, 0, _IDX_TYPE_CODES[array.dtype], array.ndim])
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist_files(folder: Path, n_train: int = 12, n_test: int = 5, *, gz: bool = True, seed: int = 0) -> Path:
    """Write four small, well-formed fake MNIST files into ``folder`` and return it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays = {
            f"{prefix}-images-idx3-ubyte": rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
            f"{prefix}-labels-idx1-ubyte": (np.arange(n) % 10).astype(np.uint8),
        }
        for name, array in arrays.items():
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No $ARCHSPEC_DATA_DIR, a private empty cache and home, no proxies for local servers."""
    monkeypatch.delenv("ARCHSPEC_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for scheme in ("http", "https", "all"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST: ../shared/data/mnist, else wherever locate_mnist finds it (as installed
    by `make install`). Missing is a skip locally and a failure under CI."""
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        return SHARED_MNIST
    try:
        return next(iter(locate_mnist().values())).parent
    except DataError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))


@pytest.fixture
def fake_mnist():
    """``write_mnist_files``, for tests that need small MNIST-shaped files."""
    return write_mnist_files


@pytest.fixture
def to_idx():
    """``idx_bytes``, for tests that craft IDX files."""
    return idx_bytes
