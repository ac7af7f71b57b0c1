"""NPZ files: named arrays, read without pickle (an object array is refused, never unpickled)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files.common import (
    FileSplits,
    Target,
    existing_file,
    file_sha256,
    fit_normalization,
    fraction_indices,
    make_splits,
    normalize,
)
from archspec.errors import DataError
from archspec.spec.files import NpzData
from archspec.spec.source import suggest


def read_arrays(path: str | Path, names: list[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, loaded with ``allow_pickle=False``."""
    path = existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise DataError(f"{path}: expected an .npz archive of named arrays, received a single .npy array")
            available = list(archive.files)
            arrays = {}
            for name in names:
                if name not in available:
                    hint = suggest(name, available)
                    raise DataError(
                        f"{path}: no array {name!r}"
                        + (f"; {hint}" if hint else "")
                        + f" (arrays: {', '.join(map(repr, available))})"
                    )
                try:
                    arrays[name] = archive[name]
                except ValueError:
                    raise DataError(
                        f"{path}: array {name!r} holds Python objects; expected numeric arrays (archspec never unpickles)"
                    ) from None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read as an .npz file ({error})") from None
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path}: array {name!r}: expected a numeric array, received dtype {array.dtype}")
    return arrays


def _pair(config: NpzData, path: str, target: Target) -> tuple[np.ndarray, np.ndarray]:
    (x_name,) = config.inputs.values()
    (y_name,) = config.targets.values()
    arrays = read_arrays(path, [x_name, y_name])
    x, y = arrays[x_name], arrays[y_name]
    if x.ndim < 1 or y.ndim < 1 or len(x) != len(y):
        raise DataError(
            f"{path}: expected arrays {x_name!r} and {y_name!r} with the same number of samples, "
            f"received shapes {list(x.shape)} and {list(y.shape)}"
        )
    if target.loss == "binary_crossentropy" and y.ndim == 1:
        y = y.reshape(-1, 1)
    return x, y


def load_npz(config: NpzData, target: Target, seed: int):
    """Splits of ``.npz`` arrays; integer targets of a classification loss are class ids."""
    files = config.files()
    if "path" in files:
        x, y = _pair(config, files["path"], target)
        parts = fraction_indices(
            len(x), config.validation_split, config.test_split, seed, in_order=False, where=files["path"]
        )
        pairs = {
            name: (x[part], y[part])
            for name, part in zip(("train", "validation", "test"), parts, strict=True)
            if part is not None
        }
    else:
        pairs = {name: _pair(config, files[name], target) for name in ("train", "validation", "test") if name in files}
    x_train = pairs["train"][0]
    fitted = None
    if x_train.dtype.kind == "f" or config.normalization != "none":
        fitted = fit_normalization(x_train, config.normalization)
        pairs = {name: (normalize(x, fitted), y) for name, (x, y) in pairs.items()}
    num_classes = target.class_count() if target.classification else None
    preprocessing: dict[str, Any] = {
        "format": "npz",
        "input": target.input_name,
        "output": target.output_name,
        "array": next(iter(config.inputs.values())),
        "files": [{"path": path, "sha256": file_sha256([Path(path)])} for path in files.values()],
        "normalization": fitted,
        "dtype": None if fitted is not None else str(x_train.dtype),
    }
    names = [str(k) for k in range(num_classes)] if num_classes else None
    return make_splits(pairs, target, num_classes, preprocessing, names)


def npz_features(preprocessing: dict[str, Any], path: str | Path) -> tuple[dict[str, np.ndarray], list[int]]:
    """A new ``.npz`` file's input arrays (by input name) as the run's preprocessing makes
    them, and the sample indices. Target arrays are not needed."""
    entries = preprocessing.get("inputs") or {preprocessing["input"]: preprocessing}
    arrays = read_arrays(path, list(dict.fromkeys(entry["array"] for entry in entries.values())))
    x = {}
    for name, entry in entries.items():
        array = arrays[entry["array"]]
        x[name] = normalize(array, entry["normalization"]) if entry["dtype"] is None else array
    lengths = {len(array) if array.ndim else 0 for array in x.values()}
    if len(lengths) > 1:
        raise DataError(f"{path}: expected input arrays with the same number of samples, received {sorted(lengths)}")
    return x, list(range(len(next(iter(x.values())))))


def load_npz_named(config: NpzData, losses: dict[str, str], seed: int) -> FileSplits:
    """Splits of ``.npz`` arrays for a model with several inputs or outputs: every split's ``x``
    and ``y`` are dicts by the spec's input and output names (``losses``: output -> its loss).
    Each float input (or every input, with a normalization) is normalised on its own, fitted on
    the training split; class labels are checked against each output by the trainer."""
    files = config.files()
    names = [*config.inputs.values(), *config.targets.values()]

    def read(path: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        arrays = read_arrays(path, list(dict.fromkeys(names)))
        lengths = {name: len(array) if array.ndim else 0 for name, array in arrays.items()}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{name!r} has {count}" for name, count in lengths.items())
            raise DataError(f"{path}: expected arrays with the same number of samples, received {listed}")
        x = {name: arrays[array] for name, array in config.inputs.items()}
        y = {}
        for output, array in config.targets.items():
            target = arrays[array]
            y[output] = (
                target.reshape(-1, 1) if losses[output] == "binary_crossentropy" and target.ndim == 1 else target
            )
        return x, y

    if "path" in files:
        x, y = read(files["path"])
        count = len(next(iter(x.values())))
        parts = fraction_indices(
            count, config.validation_split, config.test_split, seed, in_order=False, where=files["path"]
        )
        pairs = {
            split: ({k: v[part] for k, v in x.items()}, {k: v[part] for k, v in y.items()})
            for split, part in zip(("train", "validation", "test"), parts, strict=True)
            if part is not None
        }
    else:
        pairs = {split: read(files[split]) for split in ("train", "validation", "test") if split in files}
    inputs: dict[str, Any] = {}
    for name, array in config.inputs.items():
        train = pairs["train"][0][name]
        fitted = None
        if train.dtype.kind == "f" or config.normalization != "none":
            fitted = fit_normalization(train, config.normalization)
            for x, _ in pairs.values():
                x[name] = normalize(x[name], fitted)
        inputs[name] = {"array": array, "normalization": fitted, "dtype": None if fitted else str(train.dtype)}
    preprocessing: dict[str, Any] = {
        "format": "npz",
        "inputs": inputs,
        "targets": dict(config.targets),
        "files": [{"path": path, "sha256": file_sha256([Path(path)])} for path in files.values()],
    }
    return FileSplits(
        train=pairs["train"],
        validation=pairs.get("validation"),
        test=pairs.get("test"),
        num_classes=None,
        preprocessing=preprocessing,
        class_names=None,
        named=pairs,
    )
