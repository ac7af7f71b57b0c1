"""CSV tables: one sample per row; ``features`` columns feed the spec's inputs (a list for its
one input, or ``{INPUT: [columns]}``), ``target`` columns its outputs (a column, or
``{OUTPUT: column}``). Categories and normalisation are fitted on the training split, per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files.common import FileSplits, Target, fit_normalization, make_splits, normalize
from archspec.data.files.csv import (
    Table,
    describe_column,
    describe_target,
    drop_missing,
    encode_features,
    encode_target,
    file_hashes,
    read_table,
    split_tables,
)
from archspec.spec.files import CsvData


def table_mapping(
    config: CsvData, header: list[str], inputs: list[str], outputs: list[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The columns of every input and the column of every output. A list of features (or none:
    every column but the targets) feeds the first input; one target column the first output
    (the spec's checks refuse them for a model with several)."""
    target = config.target
    targets = dict(target) if isinstance(target, dict) else {outputs[0]: str(target)}
    features = config.features
    if isinstance(features, dict):
        by_input = {name: list(columns) for name, columns in features.items()}
    elif features is None:
        by_input = {inputs[0]: [name for name in header if name not in targets.values()]}
    else:
        by_input = {inputs[0]: list(features)}
    return by_input, targets


@dataclass(frozen=True)
class _Encoded:
    """A table source encoded: what was fitted, and every split's arrays by input and output."""

    features: dict[str, list[dict[str, Any]]]  # by input: each column's type (and categories)
    normalization: dict[str, dict[str, Any] | None]  # by input
    targets: dict[str, dict[str, Any]]  # by output: the column and its classes, or a number
    parts: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


def _encode(config: CsvData, inputs: list[str], targets: dict[str, Target], seed: int) -> _Encoded:
    tables = split_tables(config, seed, in_order=False)
    by_input, by_output = table_mapping(config, tables["train"].header, inputs, list(targets))
    used = list(dict.fromkeys([*(c for columns in by_input.values() for c in columns), *by_output.values()]))
    for table in tables.values():
        for name in used:
            table.column(name)
    if config.missing == "drop_rows":
        tables = {split: drop_missing(table, used) for split, table in tables.items()}
    train = tables["train"]
    described: dict[str, dict[str, Any]] = {}  # a column feeding two inputs is typed once
    features, fitted = {}, {}
    x: dict[str, dict[str, np.ndarray]] = {split: {} for split in tables}
    for name, columns in by_input.items():
        features[name] = [described.setdefault(c, describe_column(train, c)) for c in columns]
        raw = {split: encode_features(table, features[name], config.missing) for split, table in tables.items()}
        numeric = _numeric(features[name])
        fitted[name] = fit_normalization(raw["train"][:, numeric], config.normalization) if numeric else None
        for split, values in raw.items():
            values[:, numeric] = normalize(values[:, numeric], fitted[name])
            x[split][name] = values
    target_infos = {name: describe_target(train, column, targets[name]) for name, column in by_output.items()}
    parts = {
        split: (
            x[split],
            {name: encode_target(table, info, targets[name]) for name, info in target_infos.items()},
        )
        for split, table in tables.items()
    }
    return _Encoded(features, fitted, target_infos, parts)


def _header(config: CsvData) -> dict[str, Any]:
    return {
        "format": "csv",
        "kind": "table",
        "delimiter": config.delimiter,
        "missing": config.missing,
        "files": file_hashes(config),
    }


def load_table(config: CsvData, target: Target, seed: int) -> FileSplits:
    """The splits of a CSV table for a model with one input and one output."""
    encoded = _encode(config, [target.input_name], {target.output_name: target}, seed)
    parts = {split: (x[target.input_name], y[target.output_name]) for split, (x, y) in encoded.parts.items()}
    target_info = encoded.targets[target.output_name]
    preprocessing = {
        **_header(config),
        "input": target.input_name,
        "output": target.output_name,
        "features": encoded.features[target.input_name],
        "normalization": encoded.normalization[target.input_name],
        "target": target_info,
    }
    classes = target_info.get("classes")
    return make_splits(parts, target, len(classes) if classes else None, preprocessing, classes)


def load_table_named(config: CsvData, inputs: list[str], targets: dict[str, Target], seed: int) -> FileSplits:
    """The splits of a CSV table for a model with several inputs or outputs: every split's
    ``x`` and ``y`` are dicts by the spec's input and output names (``targets``: by output)."""
    encoded = _encode(config, inputs, targets, seed)
    preprocessing = {
        **_header(config),
        "inputs": {
            name: {"features": columns, "normalization": encoded.normalization[name]}
            for name, columns in encoded.features.items()
        },
        "outputs": encoded.targets,
    }
    return FileSplits(
        train=encoded.parts["train"],
        validation=encoded.parts.get("validation"),
        test=encoded.parts.get("test"),
        num_classes=None,  # each output's labels are checked against its own output
        preprocessing=preprocessing,
        class_names=None,
        named=encoded.parts,
    )


def _numeric(columns: list[dict[str, Any]]) -> list[int]:
    """The positions of the numeric features among the encoded ones (one-hot columns expand)."""
    kinds: list[str] = []
    for info in columns:
        kinds.extend(["number"] if info["type"] == "number" else ["category"] * len(info["categories"]))
    return [k for k, kind in enumerate(kinds) if kind == "number"]


def _features(table: Table, columns: list[dict[str, Any]], fitted, missing: str) -> np.ndarray:
    for info in columns:
        table.column(info["column"])
    x = encode_features(table, columns, missing)
    numeric = _numeric(columns)
    x[:, numeric] = normalize(x[:, numeric], fitted)
    return x


def table_features(preprocessing: dict[str, Any], path: str | Path) -> tuple[dict[str, np.ndarray], list[int]]:
    """A new CSV file's inputs as the run's preprocessing makes them (by input name), and each
    row's file line. Target columns are not needed."""
    table = read_table(path, preprocessing["delimiter"])
    missing = preprocessing["missing"]
    if "inputs" in preprocessing:
        x = {
            name: _features(table, entry["features"], entry["normalization"], missing)
            for name, entry in preprocessing["inputs"].items()
        }
    else:
        x = {
            preprocessing["input"]: _features(table, preprocessing["features"], preprocessing["normalization"], missing)
        }
    return x, table.lines
