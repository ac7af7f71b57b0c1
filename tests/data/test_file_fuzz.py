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
