"""MNIST from its four IDX files: finding them, parsing them once per process, views and scaling."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from archspec.data._checks import check_choice, check_fraction
from archspec.data.derived import derive_mnist
from archspec.data.idx import read_idx
from archspec.data.locations import DATA_DIR_ENV, candidate_dirs
from archspec.data.splits import ArrayPair as Pair
from archspec.data.splits import Splits, split_off_last, validation_count
from archspec.errors import DataError

# SHA-256 of the *uncompressed* files; the .gz bytes differ between mirrors, the content does not.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_FILES = tuple(MNIST_SHA256)
MNIST_VIEWS = ("flat", "image", "sequence")
MNIST_NORMALIZATIONS = ("scale", "standardize", "none")
MNIST_NUM_CLASSES = 10
_IMAGE_SIZE = 28

# Parsed uint8 arrays keyed by (path, mtime, size) of the four files; two entries at most,
# since each holds about 55 MB.
_CACHE: dict[tuple, tuple[Pair, Pair]] = {}
_CACHE_SIZE = 2


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or else ``directory/name.gz``, whichever exists first; None if neither."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate_mnist(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Paths of the four MNIST files, by standard name (e.g. ``"t10k-images-idx3-ubyte"``).

    Looks in ``data_dir`` when given, else in ``$ARCHSPEC_DATA_DIR`` then the user cache
    (``$XDG_CACHE_HOME/archspec`` or ``~/.cache/archspec``); in each folder, directly and in a
    ``mnist/`` subfolder. Each file may be raw or ``.gz`` (raw preferred). All four must be in
    the same folder. Raises DataError saying where it looked and how to get the data.
    """
    searched = candidate_dirs("mnist", data_dir)
    partial = []
    for directory in searched:
        found = {name: find_file(directory, name) for name in MNIST_FILES}
        located = {name: path for name, path in found.items() if path is not None}
        if len(located) == len(found):
            return located
        missing = [name for name, path in found.items() if path is None]
        if len(missing) < len(MNIST_FILES):
            partial.append(f"{directory} lacks {', '.join(missing)}")
    where = ", ".join(str(directory) for directory in dict.fromkeys(searched))
    detail = f" ({'; '.join(partial)})" if partial else ""
    raise DataError(
        f"MNIST not found: expected {', '.join(MNIST_FILES)} (raw or .gz) in one of {where}"
        f"{detail}. Run `archspec data fetch mnist`, or set {DATA_DIR_ENV} / pass --data-dir "
        f"to a folder holding them"
    )


def read_mnist(data_dir: str | Path | None = None) -> tuple[Pair, Pair]:
    """The raw MNIST arrays ``((train_images, train_labels), (test_images, test_labels))``.

    Images are uint8 of shape ``(N, 28, 28)``, labels uint8 of shape ``(N,)`` in 0..9
    (N = 60000 and 10000). The arrays are read-only and cached in-process, so a second
    call is free; files that change on disk are read again.
    """
    paths = locate_mnist(data_dir)
    stats = {path: path.stat() for path in paths.values()}
    key = tuple((str(path), stat.st_mtime_ns, stat.st_size) for path, stat in stats.items())
    if key not in _CACHE:
        train, test = (
            _read_split(paths[f"{prefix}-images-idx3-ubyte"], paths[f"{prefix}-labels-idx1-ubyte"])
            for prefix in ("train", "t10k")
        )
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (train, test)
    return _CACHE[key]


def load_mnist(
    data_dir: str | Path | None = None,
    *,
    view: str = "flat",
    normalization: str = "scale",
    validation_split: float = 0.0,
    inputs: Mapping[str, Mapping[str, object]] | None = None,
    targets: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Splits:
    """MNIST as Splits of float32 ``x`` and int64 ``y`` of shape ``(N,)``, ``num_classes=10``.

    ``view`` gives the shape of ``x``: ``"flat"`` ``(N, 784)``, ``"image"`` ``(N, 28, 28, 1)``
    (channels last), ``"sequence"`` ``(N, 28, 28)`` (28 time steps of 28 features, one per
    image row). ``normalization``: ``"scale"`` divides by 255 (values in [0, 1]);
    ``"standardize"`` subtracts the mean and divides by the standard deviation of all pixels
    of the training samples (two scalars, from the samples kept for training only);
    ``"none"`` keeps 0..255. ``validation_split`` is a fraction in [0, 1): like Keras'
    ``validation_split``, the LAST ``round(fraction * 60000)`` training samples become the
    validation split (no shuffling) and the rest the train split. The test split is the
    10,000 t10k samples. See ``locate_mnist`` for where the files are looked for.

    ``inputs`` and ``targets`` (with ``seed``) derive several named inputs (views, noisy
    copies) and targets (``digit``, ``even``) from the digits: ``archspec.data.derived``.
    """
    check_choice(view, MNIST_VIEWS, "view")
    check_choice(normalization, MNIST_NORMALIZATIONS, "normalization")
    check_fraction(validation_split, "validation_split")
    train, test = read_mnist(data_dir)
    train, validation = split_off_last(train, validation_count(len(train[0]), validation_split))
    offset, scale = _normalization_constants(train[0], normalization)

    def convert(pair: Pair) -> Pair:
        images, labels = pair
        return _pixels(images, view, offset, scale), labels.astype(np.int64)

    splits = Splits(
        train=convert(train),
        validation=None if validation is None else convert(validation),
        test=convert(test),
        num_classes=MNIST_NUM_CLASSES,
    )
    if inputs is None and targets is None:
        return splits
    return derive_mnist(splits, inputs, targets, view=view, seed=seed)


def pixel_statistics(images: np.ndarray) -> tuple[float, float]:
    """Mean and (population) standard deviation of all uint8 pixels of ``images``, in float64."""
    # A histogram of the 256 values gives both exactly, without a float64 copy of the images.
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    total = counts.sum()
    mean = float(counts @ values / total)
    variance = float(counts @ (values - mean) ** 2 / total)
    return mean, variance**0.5


def _read_split(images_path: Path, labels_path: Path) -> Pair:
    images, labels = read_idx(images_path), read_idx(labels_path)
    expected_shape = (_IMAGE_SIZE, _IMAGE_SIZE)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != expected_shape:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), "
            f"received {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected uint8 labels of shape (N,), received {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: expected {len(images)} labels, one per image in {images_path.name}, received {len(labels)}"
        )
    if len(labels) and labels.max() >= MNIST_NUM_CLASSES:
        raise DataError(f"{labels_path}: expected labels 0..9, received {int(labels.max())}")
    return images, labels


def _normalization_constants(train_images: np.ndarray, normalization: str) -> tuple[float, float]:
    if normalization == "scale":
        return 0.0, 255.0
    if normalization == "standardize":
        mean, std = pixel_statistics(train_images)
        if std == 0:
            raise DataError(
                f"expected training images whose pixels vary, to standardize them, "
                f"received every pixel equal to {mean:g}"
            )
        return mean, std
    return 0.0, 1.0


def _pixels(images: np.ndarray, view: str, offset: float, scale: float) -> np.ndarray:
    shapes = {"flat": (-1, _IMAGE_SIZE * _IMAGE_SIZE), "image": (-1, _IMAGE_SIZE, _IMAGE_SIZE, 1)}
    x = images.astype(np.float32)
    if offset:
        x -= np.float32(offset)
    if scale != 1.0:
        x /= np.float32(scale)
    return x.reshape(shapes.get(view, (-1, _IMAGE_SIZE, _IMAGE_SIZE)))
