"""The data part of a spec for the user's own files: NPZ arrays, CSV tables and time series,
image folders. Each names its files (``path``, or ``train``/``validation``/``test``), how they
map onto the spec's ``inputs`` and ``outputs``, and how they are split and normalised.

Relative paths are relative to the spec file's folder (``with_paths_from``), or to the current
folder for a spec given as text. The loaders are in ``archspec.data.files``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from archspec.spec.common import Number, PositiveInteger, StrictModel
from archspec.spec.source import suggest

Normalization = Literal["scale", "standardize", "none"]


class _Files(StrictModel):
    """What every file source has: where its files are, how they split, how they normalise."""

    path: str | None = Field(None, min_length=1)
    train: str | None = Field(None, min_length=1)
    validation: str | None = Field(None, min_length=1)
    test: str | None = Field(None, min_length=1)
    validation_split: Number = Field(0.0, ge=0.0, lt=1.0)
    test_split: Number = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _one_way_to_name_files(self):
        if (self.path is None) == (self.train is None):
            raise ValueError("expected either 'path' (one file, split by fractions) or 'train' (a file per split)")
        if self.path is None and (self.validation_split or self.test_split) and self.validation is not None:
            raise ValueError("expected 'validation' as a file or 'validation_split', not both")
        if self.path is None and self.test_split and self.test is not None:
            raise ValueError("expected 'test' as a file or 'test_split', not both")
        if self.path is not None and (self.validation is not None or self.test is not None):
            raise ValueError(
                "expected 'validation' and 'test' files only with 'train' (a file per split), not with 'path'"
            )
        if self.validation_split + self.test_split >= 1:
            raise ValueError("expected validation_split + test_split to leave training samples (< 1)")
        return self

    def files(self) -> dict[str, str]:
        """The files by role: ``path``, or ``train``/``validation``/``test``."""
        named = {"path": self.path, "train": self.train, "validation": self.validation, "test": self.test}
        return {role: value for role, value in named.items() if value is not None}


class NpzData(_Files):
    """Named arrays of ``.npz`` files: ``inputs: {INPUT: ARRAY}``, ``targets: {OUTPUT: ARRAY}``.
    Loaded without pickle; object arrays are refused."""

    format: Literal["npz"]
    inputs: dict[str, str] = Field(min_length=1)
    targets: dict[str, str] = Field(min_length=1)
    normalization: Normalization = "none"


class CsvData(_Files):
    """A CSV table with a header row, or a time series (with ``window``).

    Table: ``features`` (columns for the model's one input, or ``{INPUT: [columns]}`` for every
    input; default: every column but the targets) and ``target`` (a column for its one output,
    or ``{OUTPUT: column}`` for every output). Numeric columns are read as float, text feature
    columns one-hot encoded; the target of a classification loss is mapped to class ids in
    sorted order, any other target read as numbers. Categories are taken from the training split.

    Time series: ``columns`` (or ``features``: the inputs of every step), ``window`` steps in, the value of
    ``target`` (a column or columns; default: ``columns``) ``horizon`` steps after the window's
    last step out. Splits are in time order and no window straddles two splits.
    """

    format: Literal["csv"]
    features: list[str] | dict[str, list[str]] | None = None
    target: str | list[str] | dict[str, str] | None = None
    columns: list[str] | None = Field(None, min_length=1)
    window: PositiveInteger | None = None
    horizon: PositiveInteger = 1
    delimiter: str = Field(",", min_length=1, max_length=1)
    missing: Literal["refuse", "drop_rows", "fill_mean"] = "refuse"
    normalization: Normalization = "none"

    @model_validator(mode="after")
    def _table_or_series(self):
        if self.window is None:
            if self.columns is not None:
                raise ValueError("expected 'columns' only for a time series (with 'window'); a table names 'features'")
            if self.target is None:
                raise ValueError("expected a 'target' column (or 'columns' and 'window' for a time series)")
            if isinstance(self.target, list):
                raise ValueError("expected 'target' to be one column or {OUTPUT: column}, received a list")
        else:
            if (self.columns is None) == (self.features is None):
                raise ValueError("expected the series' input columns as 'columns' (or 'features') with 'window'")
            if isinstance(self.features, dict) or isinstance(self.target, dict):
                raise ValueError(
                    "expected column lists for a time series: 'columns' and an optional 'target' column or list"
                )
        return self

    @property
    def is_series(self) -> bool:
        return self.window is not None

    @property
    def series_columns(self) -> list[str]:
        """A time series' input columns: ``columns``, or ``features`` as a list."""
        return list(self.columns or (self.features if isinstance(self.features, list) else []))


class ImageFolderData(_Files):
    """One sub-folder per class (Keras' ``image_dataset_from_directory`` layout) of PNG, JPEG or
    BMP files; ``size: [H, W]`` resizes (bilinear), ``color`` picks 1 or 3 channels; samples
    are channels-last ``(H, W, C)``. ``scale`` (the default) divides pixels by 255."""

    format: Literal["image_folder"]
    size: list[PositiveInteger] | None = Field(None, min_length=2, max_length=2)
    color: Literal["grayscale", "rgb"] = "rgb"
    normalization: Normalization = "scale"


FileData = NpzData | CsvData | ImageFolderData
FILE_FORMATS = ("npz", "csv", "image_folder")


def with_paths_from(data: FileData, folder: Path) -> FileData:
    """``data`` with its relative paths made absolute against ``folder`` (the spec file's)."""
    update = {role: str(folder / value) for role, value in data.files().items() if not Path(value).is_absolute()}
    return data.model_copy(update=update) if update else data


def file_data_problems(
    data: FileData, inputs: list[str], outputs: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Names in ``data`` that are not the spec's inputs or outputs, inputs or outputs it leaves
    unfed, and what a format cannot feed (several inputs or outputs: npz and csv tables only)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []

    def check(names, known: list[str], key: str, what: str) -> None:
        for name in names:
            if name not in known:
                hint = suggest(name, known) or f"expected one of {', '.join(map(repr, known))}"
                problems.append(((("data", key, name)), f"no {what} named {name!r}; {hint}"))

    if isinstance(data, NpzData):
        check(data.inputs, inputs, "inputs", "model input")
        check(data.targets, outputs, "targets", "model output")
        for key, given, known, what in (
            ("inputs", data.inputs, inputs, "input"),
            ("targets", data.targets, outputs, "output"),
        ):
            missing = [name for name in known if name not in given]
            if missing and len(known) > 1:
                listed = ", ".join(map(repr, missing))
                problems.append(
                    (("data", key), f"expected an array for every model {what}, received none for {listed}")
                )
        return problems
    several = len(inputs) > 1 or len(outputs) > 1
    if isinstance(data, CsvData) and not data.is_series:
        problems.extend(_table_problems(data, inputs, outputs, check))
        return problems
    if several:
        what = "a time series (window)" if isinstance(data, CsvData) else f"{data.format} data"
        problems.append(
            (
                ("data",),
                f"{what} feeds one input and one output; this spec has several (csv tables and npz files may feed several)",
            )
        )
    return problems


def _table_problems(
    data: CsvData, inputs: list[str], outputs: list[str], check
) -> list[tuple[tuple[str | int, ...], str]]:
    """A CSV table's mapping against the spec: every input and output fed, by known names, and
    no column used where it makes no sense (twice for one input, or as a feature and a target)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    features, target = data.features, data.target
    if isinstance(features, dict):
        check(features, inputs, "features", "model input")
    if isinstance(target, dict):
        check(target, outputs, "target", "model output")
    if isinstance(features, dict):
        missing = [name for name in inputs if name not in features]
        if missing:
            listed = ", ".join(map(repr, missing))
            problems.append(
                (("data", "features"), f"expected columns for every model input, received none for {listed}")
            )
    elif len(inputs) > 1:
        received = "none" if features is None else "a list"
        problems.append(
            (
                ("data",) + (("features",) if features is not None else ()),
                f"expected features as {{INPUT: [columns]}} for the model's inputs {', '.join(map(repr, inputs))}, "
                f"received {received}",
            )
        )
    if isinstance(target, dict):
        missing = [name for name in outputs if name not in target]
        if missing:
            listed = ", ".join(map(repr, missing))
            problems.append(
                (("data", "target"), f"expected a column for every model output, received none for {listed}")
            )
    elif len(outputs) > 1:
        problems.append(
            (
                ("data", "target"),
                f"expected target as {{OUTPUT: column}} for the model's outputs {', '.join(map(repr, outputs))}, "
                "received one column",
            )
        )
    target_columns = set(target.values()) if isinstance(target, dict) else {target}
    lists = features.items() if isinstance(features, dict) else ([(None, features)] if features is not None else [])
    for name, columns in lists:
        where: tuple[str | int, ...] = ("data", "features") + ((name,) if name is not None else ())
        if not columns:
            problems.append((where, "expected at least one feature column, received none"))
        for k, column in enumerate(columns):
            if column in columns[:k]:
                problems.append(
                    ((*where, k), f"column {column!r} is listed twice; expected each column once per input")
                )
            elif column in target_columns:
                problems.append(
                    (
                        (*where, k),
                        f"column {column!r} is also a target; expected features that are not what the model predicts",
                    )
                )
    return problems
