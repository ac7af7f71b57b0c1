"""The user's own files as a run's data: NPZ arrays, CSV tables and time series, image folders.

``load_files`` turns a spec's file source into checked ``FileSplits`` (every split's arrays by
the spec's input and output names, and the preprocessing fitted on the training split);
``read_for_prediction`` replays that preprocessing on a new file for ``archspec predict``.
Every problem is one DataError naming the file (and row and column, or image).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files.common import FileSplits, Target, check_unchanged
from archspec.data.files.images import image_features, load_image_folder
from archspec.data.files.npz import load_npz, load_npz_named, npz_features
from archspec.data.files.series import load_series, series_features
from archspec.data.files.tables import load_table, load_table_named, table_features
from archspec.errors import CheckpointError, DataError
from archspec.spec.files import CsvData, FileData, ImageFolderData, NpzData

PREPROCESSING_FILE = "preprocessing.json"

__all__ = [
    "PREPROCESSING_FILE",
    "FileSplits",
    "Target",
    "check_files_unchanged",
    "load_files",
    "load_named_files",
    "read_for_prediction",
    "read_preprocessing",
]


def load_files(config: FileData, target: Target, *, seed: int = 0) -> FileSplits:
    """Load a file source for a model whose input, output and loss ``target`` describes.

    Fractions (``validation_split``, ``test_split``) are drawn from ``seed`` (time series: in
    time order). Raises DataError naming the file, row and column (or image) at fault.
    """
    if isinstance(config, NpzData):
        return load_npz(config, target, seed)
    if isinstance(config, CsvData):
        return load_series(config, target, seed) if config.is_series else load_table(config, target, seed)
    if isinstance(config, ImageFolderData):
        return load_image_folder(config, target, seed)
    raise DataError(f"expected a file source (npz, csv, image_folder), received {type(config).__name__}")


def preprocessing_bytes(splits: FileSplits) -> bytes:
    """The preprocessing as the JSON a run folder keeps beside its weights."""
    document = {"version": 1, **splits.preprocessing, "class_names": splits.class_names}
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()


def read_preprocessing(path: str | Path) -> dict[str, Any]:
    """A run's ``preprocessing.json``; CheckpointError when it is missing or not one."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no such file (a run trained on data files writes it beside its weights)"
        ) from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read the run's preprocessing ({error})") from None
    if not isinstance(document, dict) or document.get("version") != 1 or "format" not in document:
        raise CheckpointError(f"{path}: expected a preprocessing file of version 1, received something else")
    return document


def load_named_files(config: FileData, inputs: list[str], targets: dict[str, Target], *, seed: int = 0) -> FileSplits:
    """Load a file source for a model with several inputs or outputs (``targets``: what each
    output and its loss ask of the data): every split's arrays are dicts by the spec's names.
    NPZ files and CSV tables feed several; the spec's checks refuse the other formats."""
    if isinstance(config, NpzData):
        return load_npz_named(config, {name: target.loss for name, target in targets.items()}, seed)
    if isinstance(config, CsvData) and not config.is_series:
        return load_table_named(config, inputs, targets, seed)
    raise DataError(
        f"expected npz files or a csv table for a model with several inputs or outputs, received {config.format}"
    )


def read_for_prediction(preprocessing: dict[str, Any], path: str | Path) -> tuple[dict[str, np.ndarray], list]:
    """A new file's inputs by input name, preprocessed as in training, and what names each
    sample (a CSV row's line, an image's path, an array index)."""
    kind = preprocessing["format"]
    if kind == "csv" and preprocessing.get("kind") != "series":
        return table_features(preprocessing, path)
    if kind == "npz":
        return npz_features(preprocessing, path)
    if kind in ("csv", "image_folder"):
        reader = series_features if kind == "csv" else image_features
        x, samples = reader(preprocessing, path)
        return {preprocessing["input"]: x}, samples
    raise CheckpointError(f"expected preprocessing of format csv, npz or image_folder, received {kind!r}")


def check_files_unchanged(run_folder: str | Path, splits: FileSplits) -> None:
    """Refuse to resume the run in ``run_folder`` when a data file changed since it began:
    a DataError naming the file (the run's ``preprocessing.json`` lists every file's SHA-256)."""
    path = Path(run_folder) / PREPROCESSING_FILE
    if path.is_file():
        check_unchanged(read_preprocessing(path), splits.preprocessing, str(run_folder))
