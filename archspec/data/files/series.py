"""CSV time series: sliding windows of ``window`` steps -> the target ``horizon`` steps after,
split in time order so that no window straddles two splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files.common import Target, fit_normalization, make_splits, normalize
from archspec.data.files.csv import (
    MISSING,
    Table,
    cell_number,
    describe_column,
    file_hashes,
    missing_error,
    read_table,
    split_tables,
)
from archspec.errors import DataError
from archspec.spec.files import CsvData


def _series_values(table: Table, names: list[str], means: dict[str, float] | None) -> np.ndarray:
    values = np.empty((len(table.rows), len(names)))
    for k, name in enumerate(names):
        j = table.column(name)
        for i, row in enumerate(table.rows):
            if row[j] in MISSING:
                if means is None:
                    raise missing_error(table, i, name, " (set missing: fill_mean to fill it)")
                values[i, k] = means[name]
            else:
                values[i, k] = cell_number(table, i, j, name)
    return values


def windows(values: np.ndarray, targets: np.ndarray, window: int, horizon: int, where: str):
    """Every window ``values[t : t + window]`` with the target row ``t + window - 1 + horizon``."""
    count = len(values) - window - horizon + 1
    if count < 1:
        raise DataError(
            f"{where}: expected a series longer than window + horizon - 1 = {window + horizon - 1} steps, "
            f"received {len(values)}"
        )
    starts = np.arange(count)
    x = values[starts[:, None] + np.arange(window)[None, :]]
    y = targets[starts + window - 1 + horizon]
    return x, y


def load_series(config: CsvData, target: Target, seed: int):
    """Sliding windows over a CSV time series, split in time order (no window crosses a split)."""
    columns = config.series_columns
    target_names = [config.target] if isinstance(config.target, str) else list(config.target or columns)
    if target.classification:
        raise DataError(f"a time series predicts values: expected loss mse or mae, received {target.loss}")
    tables = split_tables(config, seed, in_order=True)
    train = tables["train"]
    for table in tables.values():
        for name in (*columns, *target_names):
            table.column(name)
    means = None
    if config.missing == "fill_mean":
        means = {name: describe_column(train, name)["mean"] for name in dict.fromkeys([*columns, *target_names])}
    window, horizon = config.window, config.horizon
    assert window is not None  # a series has a window (the spec model)
    train_values = _series_values(train, columns, means)
    fitted = fit_normalization(train_values, config.normalization)
    parts = {}
    for name, table in tables.items():
        values = normalize(_series_values(table, columns, means), fitted)
        raw_targets = _series_values(table, target_names, means)
        parts[name] = windows(values, raw_targets, window, horizon, f"{table.path} ({name} split)")
    preprocessing = {
        "format": "csv",
        "kind": "series",
        "delimiter": config.delimiter,
        "missing": config.missing,
        "input": target.input_name,
        "output": target.output_name,
        "files": file_hashes(config),
        "columns": columns,
        "means": means,
        "targets": target_names,
        "window": window,
        "horizon": horizon,
        "normalization": fitted,
    }
    return make_splits(parts, target, None, preprocessing, None)


def series_features(preprocessing: dict[str, Any], path: str | Path) -> tuple[np.ndarray, list[int]]:
    """Every full window of a new series file (no target needed), and the file line of each
    window's last step."""
    table = read_table(path, preprocessing["delimiter"])
    values = normalize(
        _series_values(table, preprocessing["columns"], preprocessing["means"]), preprocessing["normalization"]
    )
    window = preprocessing["window"]
    if len(values) < window:
        raise DataError(f"{table.path}: expected a series of at least window = {window} steps, received {len(values)}")
    starts = np.arange(len(values) - window + 1)
    x = values[starts[:, None] + np.arange(window)[None, :]]
    return x, [table.lines[t + window - 1] for t in starts]
