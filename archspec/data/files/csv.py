"""CSV files: reading them, typing and encoding their columns, splitting them. Tables are
loaded in ``tables.py``, time series in ``series.py``.

A file has a header row; each later row is one sample (a table) or one time step (a series).
Cells ``""``, ``NA``, ``N/A``, ``NaN`` and ``nan`` are missing. A column is numeric when its
first present cell in the training split is a number, text otherwise; a numeric column with
text in a later cell is refused at that cell, never guessed.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files.common import (
    Target,
    check_class_count,
    existing_file,
    file_sha256,
    fraction_indices,
)
from archspec.errors import DataError
from archspec.spec.files import CsvData
from archspec.spec.source import suggest

MISSING = frozenset({"", "NA", "N/A", "NaN", "nan"})


@dataclass(frozen=True)
class Table:
    """The cells of one CSV file: ``rows[i][j]`` is column ``header[j]`` at file line ``lines[i]``."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> int:
        if name not in self.header:
            hint = suggest(name, self.header)
            listed = ", ".join(map(repr, self.header[:20])) + (", ..." if len(self.header) > 20 else "")
            raise DataError(
                f"{self.path}: no column {name!r}" + (f"; {hint}" if hint else "") + f" (columns: {listed})"
            )
        return self.header.index(name)

    def take(self, indices) -> Table:
        return Table(self.path, self.header, [self.rows[i] for i in indices], [self.lines[i] for i in indices])


def read_table(path: str | Path, delimiter: str) -> Table:
    """Every row of a CSV file, checked to have as many cells as the header."""
    path = existing_file(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: expected a header row, received an empty file")
            header = [name.strip() for name in header]
            duplicated = sorted({name for name in header if header.count(name) > 1})
            if duplicated:
                raise DataError(
                    f"{path}:1: expected distinct column names, received {', '.join(map(repr, duplicated))} twice"
                )
            rows, lines = [], []
            for row in reader:
                if not row:  # a blank line
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}:{reader.line_num}: expected {len(header)} fields as in the header, received {len(row)}"
                    )
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: expected UTF-8 text, received byte {error.object[error.start]:#04x}") from None
    except csv.Error as error:
        raise DataError(f"{path}: cannot read as CSV ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None
    if not rows:
        raise DataError(f"{path}: expected at least one data row below the header, received none")
    return Table(str(path), header, rows, lines)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def describe_column(table: Table, name: str) -> dict[str, Any]:
    """Type a column by the training split: numeric (mean kept for fill_mean) or categories."""
    j = table.column(name)
    present = [row[j] for row in table.rows if row[j] not in MISSING]
    if not present:
        raise DataError(f"{table.path}: column {name!r}: expected values, received only missing cells")
    if _number(present[0]) is not None:
        values = [cell_number(table, i, j, name) for i in range(len(table.rows)) if table.rows[i][j] not in MISSING]
        return {"column": name, "type": "number", "mean": float(np.mean(values))}
    return {"column": name, "type": "category", "categories": sorted(set(present))}


def cell_number(table: Table, i: int, j: int, name: str) -> float:
    text = table.rows[i][j]
    value = _number(text)
    if value is None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise DataError(f"{table.path}:{table.lines[i]}: column {name!r}: expected a number, received {shown!r}")
    return value


def missing_error(table: Table, i: int, name: str, hint: str = "") -> DataError:
    return DataError(f"{table.path}:{table.lines[i]}: column {name!r}: missing value{hint}")


def encode_features(table: Table, columns: list[dict[str, Any]], missing: str) -> np.ndarray:
    """Numeric columns as float64, category columns one-hot (in category order), in column order."""
    blocks = []
    for info in columns:
        name = info["column"]
        j = table.column(name)
        if info["type"] == "number":
            values = np.empty(len(table.rows))
            for i, row in enumerate(table.rows):
                if row[j] in MISSING:
                    if missing != "fill_mean":
                        raise missing_error(table, i, name, " (set missing: drop_rows or fill_mean to handle it)")
                    values[i] = info["mean"]
                else:
                    values[i] = cell_number(table, i, j, name)
            blocks.append(values[:, None])
        else:
            categories = info["categories"]
            index = {category: k for k, category in enumerate(categories)}
            onehot = np.zeros((len(table.rows), len(categories)))
            for i, row in enumerate(table.rows):
                if row[j] in MISSING:
                    raise missing_error(table, i, name, " (a text column; fill_mean fills numeric columns only)")
                if row[j] not in index:
                    raise DataError(
                        f"{table.path}:{table.lines[i]}: column {name!r}: unseen category {row[j]!r}; "
                        f"expected one of the training split's {_listed(categories)}"
                    )
                onehot[i, index[row[j]]] = 1.0
            blocks.append(onehot)
    return np.concatenate(blocks, axis=1)


def _listed(values: list[str]) -> str:
    return ", ".join(map(repr, values[:10])) + (", ..." if len(values) > 10 else "")


def describe_target(table: Table, name: str, target: Target) -> dict[str, Any]:
    """A classification target's classes (sorted: numerically when all are numbers), or a numeric target."""
    j = table.column(name)
    for i, row in enumerate(table.rows):
        if row[j] in MISSING:
            raise missing_error(table, i, name, " (a target is never filled)")
    values = sorted({row[j] for row in table.rows})
    if not target.classification:
        for i in range(len(table.rows)):
            cell_number(table, i, j, name)
        return {"column": name, "type": "number"}
    numbers = [_number(value) for value in values]
    if all(number is not None for number in numbers):
        values = [value for _, value in sorted(zip(numbers, values, strict=True))]
    check_class_count(len(values), target, f"{table.path}: column {name!r}")
    return {"column": name, "type": "classes", "classes": values}


def encode_target(table: Table, info: dict[str, Any], target: Target) -> np.ndarray:
    j = table.column(info["column"])
    name = info["column"]
    if info["type"] == "number":
        values = np.empty((len(table.rows), 1))
        for i, row in enumerate(table.rows):
            if row[j] in MISSING:
                raise missing_error(table, i, name, " (a target is never filled)")
            values[i, 0] = cell_number(table, i, j, name)
        return values
    index = {value: k for k, value in enumerate(info["classes"])}
    ids = np.empty(len(table.rows), dtype=np.int64)
    for i, row in enumerate(table.rows):
        if row[j] in MISSING:
            raise missing_error(table, i, name, " (a target is never filled)")
        if row[j] not in index:
            raise DataError(
                f"{table.path}:{table.lines[i]}: column {name!r}: class {row[j]!r} is not among the training "
                f"split's {_listed(info['classes'])}"
            )
        ids[i] = index[row[j]]
    return target.labels(ids)


def drop_missing(table: Table, names: list[str]) -> Table:
    columns = [table.column(name) for name in names]
    keep = [i for i, row in enumerate(table.rows) if not any(row[j] in MISSING for j in columns)]
    if not keep:
        raise DataError(f"{table.path}: expected rows without missing values, received none (missing: drop_rows)")
    return table.take(keep)


def split_tables(config: CsvData, seed: int, *, in_order: bool) -> dict[str, Table]:
    files = config.files()
    if "path" in files:
        table = read_table(files["path"], config.delimiter)
        parts = fraction_indices(
            len(table.rows), config.validation_split, config.test_split, seed, in_order=in_order, where=table.path
        )
        tables = {
            name: table.take(part)
            for name, part in zip(("train", "validation", "test"), parts, strict=True)
            if part is not None
        }
        return tables
    tables = {
        name: read_table(files[name], config.delimiter) for name in ("train", "validation", "test") if name in files
    }
    train = tables["train"]
    rest = [name for name in ("validation", "test") if name not in tables and getattr(config, f"{name}_split")]
    if rest:  # a fraction of the training file split off as well
        parts = fraction_indices(
            len(train.rows),
            config.validation_split if "validation" in rest else 0.0,
            config.test_split if "test" in rest else 0.0,
            seed,
            in_order=in_order,
            where=train.path,
        )
        tables["train"] = train.take(parts[0])
        for name, part in zip(("validation", "test"), parts[1:], strict=True):
            if part is not None and name in rest:
                tables[name] = train.take(part)
    return tables


def file_hashes(config) -> list[dict[str, str]]:
    """Each file of a source with its SHA-256, so that a resumed run can name a changed one."""
    return [{"path": path, "sha256": file_sha256([Path(path)])} for path in config.files().values()]
