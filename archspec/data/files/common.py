"""What the file loaders share: opening files, splitting by fractions, normalising, and the
result, ``FileSplits``: ``Splits`` plus the preprocessing that ``archspec predict`` replays."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.splits import SPLIT_NAMES, Splits, validation_count
from archspec.errors import DataError

CLASSIFICATION_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


@dataclass(frozen=True, repr=False)
class FileSplits(Splits):
    """``Splits`` of a file source, with what was fitted on its training split.

    ``named`` holds every split's arrays by the spec's names: ``{split: ({INPUT: x}, {OUTPUT: y})}``.
    ``preprocessing`` (JSON-ready) is what ``archspec predict`` applies to new files of the
    same format; ``class_names`` names the classes of a classification target, in id order.
    """

    preprocessing: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    named: Mapping[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What the spec asks of the target: its output's name and width, and the loss."""

    input_name: str
    output_name: str
    output_units: int
    loss: str

    @property
    def classification(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    def class_count(self) -> int:
        """The number of classes the model's output stands for."""
        return 2 if self.loss == "binary_crossentropy" else self.output_units

    def labels(self, ids: np.ndarray) -> np.ndarray:
        """Class ids in the form the loss reads: (N, 1) floats for binary, (N,) int64 otherwise."""
        if self.loss == "binary_crossentropy":
            return ids.astype(np.float64).reshape(-1, 1)
        return ids.astype(np.int64)


def existing_file(path: str | Path, what: str = "file") -> Path:
    """``path`` when it is a readable file; else a DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such {what}")
    if what == "file" and not path.is_file():
        raise DataError(f"{path}: expected a file, received a folder")
    if what == "folder" and not path.is_dir():
        raise DataError(f"{path}: expected a folder of class sub-folders, received a file")
    return path


def fraction_indices(n: int, validation_split: float, test_split: float, seed: int, *, in_order: bool, where: str):
    """Indices of the train, validation and test parts of ``n`` samples.

    ``in_order``: train first, then validation, then test (time series); else the parts are
    drawn from ``numpy.random.default_rng(seed).permutation(n)``: test first, validation next,
    the rest is train; each part in the file's order. Sizes are ``round(fraction * n)``; an empty part is None.
    """
    n_test = validation_count(n, test_split)
    n_validation = validation_count(n, validation_split)
    n_train = n - n_test - n_validation
    if n_train < 1:
        raise DataError(
            f"{where}: expected validation_split + test_split to leave training samples, "
            f"received {n_validation} validation + {n_test} test of {n} samples"
        )
    if in_order:
        order = np.arange(n)
        parts = (order[:n_train], order[n_train : n_train + n_validation], order[n_train + n_validation :])
    else:
        order = np.random.default_rng(seed).permutation(n)
        train, validation, test = order[n_test + n_validation :], order[n_test : n_test + n_validation], order[:n_test]
        parts = (np.sort(train), np.sort(validation), np.sort(test))  # each part keeps the file's order
    return tuple(part if len(part) else None for part in parts)


def fit_normalization(x: np.ndarray, method: str, *, axis: tuple[int, ...] = (0,)) -> dict[str, Any] | None:
    """Per-feature ``offset`` and ``divisor`` fitted on the training inputs ``x`` so that
    ``(x - offset) / divisor`` is in [0, 1] (``scale``: min and range) or has mean 0 and
    standard deviation 1 (``standardize``: mean and population std). A constant feature gets
    divisor 1. ``none``: None."""
    if method == "none":
        return None
    x = x.astype(np.float64)
    if method == "scale":
        offset, divisor = x.min(axis=axis), x.max(axis=axis) - x.min(axis=axis)
    else:
        offset, divisor = x.mean(axis=axis), x.std(axis=axis)
    divisor = np.where(divisor > 0, divisor, 1.0)
    return {"method": method, "offset": offset.tolist(), "divisor": divisor.tolist()}


def normalize(x: np.ndarray, fitted: Mapping[str, Any] | None) -> np.ndarray:
    """``(x - offset) / divisor`` in float64 (``x`` as float64 when ``fitted`` is None)."""
    x = x.astype(np.float64)
    if fitted is None:
        return x
    return (x - np.asarray(fitted["offset"], dtype=np.float64)) / np.asarray(fitted["divisor"], dtype=np.float64)


def make_splits(
    parts: Mapping[str, tuple[np.ndarray, np.ndarray] | None],
    target: Target,
    num_classes: int | None,
    preprocessing: dict[str, Any],
    class_names: list[str] | None,
) -> FileSplits:
    """``FileSplits`` of the parts present, named by the spec's input and output."""
    present = {name: pair for name, pair in parts.items() if pair is not None and name in SPLIT_NAMES}
    named = {name: ({target.input_name: x}, {target.output_name: y}) for name, (x, y) in present.items()}
    return FileSplits(
        train=present["train"],
        validation=present.get("validation"),
        test=present.get("test"),
        num_classes=num_classes,
        preprocessing=preprocessing,
        class_names=class_names,
        named=named,
    )


def check_class_count(found: int, target: Target, where: str) -> None:
    """Refuse a target whose class count is not what the model's output stands for."""
    if found < 2:
        raise DataError(f"{where}: expected at least 2 classes in the training split, received {found}")
    expected = target.class_count()
    if found != expected:
        what = "binary_crossentropy (2 classes)" if target.loss == "binary_crossentropy" else f"{expected} output units"
        raise DataError(
            f"{where}: the model's output '{target.output_name}' expects {what}, the data has {found} classes"
        )


def file_sha256(paths: Iterable[Path], root: Path | None = None) -> str:
    """SHA-256 over the files' bytes (and, under ``root``, their relative names), in order."""
    digest = hashlib.sha256()
    for path in paths:
        if root is not None:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as error:
            raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None
    return digest.hexdigest()


def check_unchanged(saved: Mapping[str, Any], current: Mapping[str, Any], where: str) -> None:
    """Refuse data files whose SHA-256 differs from what the run recorded (``files`` entries)."""
    before = {entry["path"]: entry["sha256"] for entry in saved.get("files", [])}
    for entry in current.get("files", []):
        old = before.get(entry["path"])
        if old is not None and old != entry["sha256"]:
            raise DataError(
                f"{entry['path']}: changed since the checkpoint in {where} (SHA-256 {old[:12]}... then, "
                f"{entry['sha256'][:12]}... now); resume with the data it was trained on"
            )
