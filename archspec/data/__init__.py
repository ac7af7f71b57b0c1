"""Data sets for archspec runs, as numpy arrays only: MNIST, synthetic sets (regression, binary,
sequences), user arrays."""

from archspec.data.datasets import DATASET_NAMES, dataset_options, load_dataset
from archspec.data.fetch import MNIST_MIRRORS, fetch_mnist, install_mnist_from, verify_mnist
from archspec.data.idx import read_idx
from archspec.data.locations import DATA_DIR_ENV, cache_root, default_dataset_dir
from archspec.data.mnist import (
    MNIST_FILES,
    MNIST_NORMALIZATIONS,
    MNIST_SHA256,
    MNIST_VIEWS,
    load_mnist,
    locate_mnist,
    read_mnist,
)
from archspec.data.sequences import SEQUENCE_TASKS, SequenceData, load_sequences, make_sequences
from archspec.data.splits import Splits, splits_from_arrays
from archspec.data.synthetic import (
    GeneratedData,
    load_binary,
    load_regression,
    make_binary,
    make_regression,
)

__all__ = [
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_NORMALIZATIONS",
    "MNIST_SHA256",
    "MNIST_VIEWS",
    "SEQUENCE_TASKS",
    "GeneratedData",
    "SequenceData",
    "Splits",
    "cache_root",
    "dataset_options",
    "default_dataset_dir",
    "fetch_mnist",
    "install_mnist_from",
    "load_binary",
    "load_dataset",
    "load_mnist",
    "load_regression",
    "load_sequences",
    "locate_mnist",
    "make_binary",
    "make_regression",
    "make_sequences",
    "read_idx",
    "read_mnist",
    "splits_from_arrays",
    "verify_mnist",
]
