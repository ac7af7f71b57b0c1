"""Generated CSV files (random columns, types and missing cells) either train a step or are
refused with one DataError line that names the file: never a crash, never a guess."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import DataError
from archspec.training.preparation import load_splits

SPEC = """
name: fuzz
inputs: {{x: {{shape: [{width}]}}}}
layers: [{{type: dense, id: out, units: {units}, activation: softmax}}]
training: {{loss: sparse_categorical_crossentropy, batch_size: 4, seed: 0}}
data: {{format: csv, path: t.csv, target: y, missing: {missing}}}
"""
NUMBER = st.floats(-1e6, 1e6, allow_nan=False).map(repr) | st.integers(-99, 99).map(str)
WORD = st.sampled_from(["red", "green", "blue", "x y", '"q,uoted"'])
MISSING_CELL = st.sampled_from(["", "NA", "NaN", "nan", "N/A"])
KIND = st.sampled_from(["number", "number", "number", "text", "text", "mixed"])


@st.composite
def tables(draw):
    kinds = draw(st.lists(KIND, min_size=1, max_size=4))
    rows = draw(st.integers(3, 12))
    missing_rate = draw(st.sampled_from([0.0, 0.0, 0.0, 0.1]))
    lines = [",".join([*(f"c{k}" for k in range(len(kinds))), "y"])]
    targets = set()
    for _ in range(rows):
        cells = []
        for kind in kinds:
            if draw(st.floats(0, 1)) < missing_rate:
                cells.append(draw(MISSING_CELL))
            elif kind == "number" or (kind == "mixed" and draw(st.booleans())):
                cells.append(draw(NUMBER))
            else:
                cells.append(draw(WORD))
        target = draw(st.sampled_from(["a", "b", "c"]))
        targets.add(target)
        if draw(st.integers(0, 100)) == 0:
            cells = cells[:-1] if cells else cells  # a ragged row now and then
        lines.append(",".join([*cells, target]))
    return "\n".join(lines) + "\n", max(2, len(targets))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from(["refuse", "drop_rows", "fill_mean"]))
def test_generated_csv_trains_a_step_or_is_refused_cleanly(table, missing):
    text, units = table
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "t.csv").write_text(text)
        spec_path = Path(folder) / "spec.yaml"
        spec_path.write_text(SPEC.format(width=1, units=units, missing=missing))
        try:
            splits = load_splits(archspec.load(spec_path), None, None)
        except DataError as error:
            message = str(error)
            assert "\n" not in message and message.startswith(str(Path(folder) / "t.csv")), message
            event("refused: " + message.split(": ", 1)[1].split(" '")[0].split(" (")[0][:40])
            return
        x, y = splits.train
        assert x.dtype == np.float64 and np.isfinite(x).all() and len(x) == len(y) >= 1
        spec_path.write_text(SPEC.format(width=x.shape[1], units=units, missing=missing))
        result = archspec.train(spec_path, backend="torch", max_steps=1, dtype="float64")
        assert result.steps == 1 and np.isfinite(result.step_losses).all()
        event("trained a step")


SEVERAL = """
name: fuzz-several
inputs: {{a: {{shape: [{wa}]}}, b: {{shape: [{wb}]}}}}
layers:
  - {{id: left, type: dense, units: 3, inputs: [a]}}
  - {{id: right, type: dense, units: 3, inputs: [b]}}
  - {{id: both, type: concatenate, inputs: [left, right]}}
  - {{id: out, type: dense, units: {units}, activation: softmax, inputs: [both]}}
  - {{id: value, type: dense, units: 1, inputs: [both]}}
outputs: [out, value]
training: {{loss: {{out: sparse_categorical_crossentropy, value: mse}}, batch_size: 4, seed: 0}}
data: {{format: csv, path: t.csv, features: {{a: {a}, b: {b}}}, target: {{out: y, value: v}}, missing: {missing}}}
"""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from(["refuse", "drop_rows", "fill_mean"]), st.integers(0, 3), st.data())
def test_generated_csv_for_two_inputs_and_two_outputs(table, missing, split, data):
    """The same tables with a value target ``v`` beside the class ``y`` (now and then a word or
    a missing cell in it), the columns shared out between two inputs (one may feed both)."""
    text, units = table
    lines = text.splitlines()
    columns = [name for name in lines[0].split(",") if name != "y"]
    values = [data.draw(NUMBER | st.sampled_from(["", "big"]) if k % 7 == 3 else NUMBER) for k in range(len(lines))]
    text = "\n".join([f"{lines[0]},v", *(f"{line},{value}" for line, value in zip(lines[1:], values, strict=False))])
    a = columns[: max(1, min(split, len(columns)))]
    b = columns[len(a) :] or columns[:1]  # a single column feeds both inputs
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "t.csv").write_text(text + "\n")
        spec_path = Path(folder) / "spec.yaml"
        options = {"units": units, "missing": missing, "a": a, "b": b}
        spec_path.write_text(SEVERAL.format(wa=1, wb=1, **options))
        try:
            splits = load_splits(archspec.load(spec_path), None, None)
        except DataError as error:
            message = str(error)
            assert "\n" not in message and message.startswith(str(Path(folder) / "t.csv")), message
            event("refused: " + message.split(": ", 1)[1].split(" '")[0].split(" (")[0][:40])
            return
        x, y = splits.train
        assert set(x) == {"a", "b"} and set(y) == {"out", "value"}
        assert all(v.dtype == np.float64 and np.isfinite(v).all() for v in x.values())
        assert y["value"].shape == (len(x["a"]), 1) and np.isfinite(y["value"]).all()
        spec_path.write_text(SEVERAL.format(wa=x["a"].shape[1], wb=x["b"].shape[1], **options))
        result = archspec.train(spec_path, backend="torch", max_steps=1, dtype="float64")
        assert result.steps == 1 and np.isfinite(result.step_losses).all()
        event("trained a step")
