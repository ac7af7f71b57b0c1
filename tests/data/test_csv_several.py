"""A CSV table feeding a model with several inputs and outputs: each input gets its columns
(numbers as float, text one-hot with the training split's categories, normalised per input on
the training split), each output its column; a mapping that does not fit the spec is a located
spec error, a column that is not in the file a DataError naming it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from file_fixtures import write_two_heads_csv

import archspec
from archspec.cli import main
from archspec.training.preparation import load_splits

SPEC = """name: csv-two-heads
inputs:
  num: {{shape: [3]}}
  mixed: {{shape: [4]}}
layers:
  - {{id: left, type: dense, units: 8, activation: tanh, inputs: [num]}}
  - {{id: right, type: dense, units: 8, activation: relu, inputs: [mixed]}}
  - {{id: joined, type: concatenate, inputs: [left, right]}}
  - {{id: kind, type: dense, units: 3, activation: softmax, inputs: [joined]}}
  - {{id: score, type: dense, units: 1, inputs: [joined]}}
outputs: [kind, score]
training:
  loss: {{kind: sparse_categorical_crossentropy, score: mse}}
  loss_weights: {{kind: 1.0, score: 0.5}}
  metrics: {{kind: [accuracy], score: [mae]}}
  batch_size: 16
  seed: 3
data: {data}
"""
DATA = (
    "{format: csv, path: t.csv, features: {num: [x1, x2, x3], mixed: [colour, size]}, "
    "target: {kind: kind, score: score}, normalization: standardize, test_split: 0.25}"
)


def write_spec(folder, data=DATA):
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(data=data))
    return path


def test_each_input_gets_its_columns_normalised_on_the_training_split(tmp_path):
    write_two_heads_csv(tmp_path / "t.csv")
    splits = load_splits(archspec.load(write_spec(tmp_path)), None, None)
    (x, y), (x_test, y_test) = splits.named["train"], splits.named["test"]
    assert len(x["num"]) == 72 and len(x_test["mixed"]) == 24
    # Each input's numeric columns standardised on the training rows, the one-hot ones kept 0 / 1.
    np.testing.assert_allclose(x["num"].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x["num"].std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose([x["mixed"][:, 3].mean(), x["mixed"][:, 3].std()], [0, 1], atol=1e-12)
    assert set(np.unique(x["mixed"][:, :3])) == {0.0, 1.0} and (x["mixed"][:, :3].sum(axis=1) == 1).all()
    assert y["kind"].dtype == np.int64 and set(np.unique(y["kind"])) == {0, 1, 2}
    assert y["score"].shape == (72, 1) and y["score"].dtype == np.float64
    pre = splits.preprocessing
    assert pre["inputs"]["mixed"]["features"][0] == {
        "column": "colour",
        "type": "category",
        "categories": ["blue", "green", "red"],
    }
    assert pre["outputs"] == {
        "kind": {"column": "kind", "type": "classes", "classes": ["ant", "bee", "cat"]},
        "score": {"column": "score", "type": "number"},
    }
    # The test rows are the file's rows the seed drew, through the training split's fit.
    table = np.genfromtxt(tmp_path / "t.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    test_rows = np.sort(np.random.default_rng(3).permutation(96)[:24])
    fitted = pre["inputs"]["num"]["normalization"]
    raw = np.stack([table[c][test_rows] for c in ("x1", "x2", "x3")], axis=1)
    np.testing.assert_array_equal(x_test["num"], (raw - fitted["offset"]) / fitted["divisor"])
    np.testing.assert_array_equal(y_test["score"][:, 0], table["score"][test_rows])


def test_a_list_of_features_and_one_target_feed_a_model_with_one_input_and_two_outputs(tmp_path):
    write_two_heads_csv(tmp_path / "t.csv")
    spec = (
        SPEC.format(data="{format: csv, path: t.csv, features: [x1, colour], target: {kind: kind, score: score}}")
        .replace("  num: {shape: [3]}\n  mixed: {shape: [4]}\n", "  num: {shape: [4]}\n")
        .replace("inputs: [mixed]", "inputs: [num]")
    )
    (tmp_path / "one.yaml").write_text(spec)
    x, y = load_splits(archspec.load(tmp_path / "one.yaml"), None, None).train
    assert list(x) == ["num"] and x["num"].shape == (96, 4) and set(y) == {"kind", "score"}


SPEC_ERRORS = {
    "an input without columns": (
        "{format: csv, path: t.csv, features: {num: [x1, x2, x3]}, target: {kind: kind, score: score}}",
        r"expected columns for every model input, received none for 'mixed'",
    ),
    "an unknown input": (
        "{format: csv, path: t.csv, features: {nums: [x1], mixed: [colour]}, target: {kind: kind, score: score}}",
        r"no model input named 'nums'; did you mean 'num'\?",
    ),
    "a list for several inputs": (
        "{format: csv, path: t.csv, features: [x1, x2], target: {kind: kind, score: score}}",
        r"expected features as \{INPUT: \[columns\]\} for the model's inputs 'num', 'mixed', received a list",
    ),
    "one column for several outputs": (
        "{format: csv, path: t.csv, features: {num: [x1], mixed: [colour]}, target: kind}",
        r"expected target as \{OUTPUT: column\} for the model's outputs 'kind', 'score', received one column",
    ),
    "an output without a column": (
        "{format: csv, path: t.csv, features: {num: [x1], mixed: [colour]}, target: {kind: kind}}",
        r"expected a column for every model output, received none for 'score'",
    ),
    "an unknown output": (
        "{format: csv, path: t.csv, features: {num: [x1], mixed: [colour]}, target: {kind: kind, scores: score}}",
        r"no model output named 'scores'; did you mean 'score'\?",
    ),
    "a column twice for one input": (
        "{format: csv, path: t.csv, features: {num: [x1, x1], mixed: [colour]}, target: {kind: kind, score: score}}",
        r"column 'x1' is listed twice; expected each column once per input",
    ),
    "a feature that is a target": (
        "{format: csv, path: t.csv, features: {num: [x1, score], mixed: [colour]}, target: {kind: kind, score: score}}",
        r"column 'score' is also a target; expected features that are not what the model predicts",
    ),
    "an input with no column": (
        "{format: csv, path: t.csv, features: {num: [], mixed: [colour]}, target: {kind: kind, score: score}}",
        r"expected at least one feature column, received none",
    ),
    "a time series": (
        "{format: csv, path: t.csv, columns: [x1], window: 4}",
        r"a time series \(window\) feeds one input and one output; this spec has several "
        r"\(csv tables and npz files may feed several\)",
    ),
    "an image folder": (
        "{format: image_folder, path: pics}",
        r"image_folder data feeds one input and one output; this spec has several",
    ),
}


@pytest.mark.parametrize("case", sorted(SPEC_ERRORS))
def test_a_mapping_that_does_not_fit_the_spec_is_a_located_spec_error(tmp_path, case):
    data, message = SPEC_ERRORS[case]
    path = write_spec(tmp_path, data)
    with pytest.raises(archspec.SpecError) as raised:
        archspec.load(path)
    lines = str(raised.value).splitlines()
    assert any(re.fullmatch(rf"{re.escape(str(path))}:18:\d+: .*{message}.*", line) for line in lines), lines


def test_every_mapping_mistake_is_reported_at_once(tmp_path):
    data = "{format: csv, path: t.csv, features: {nums: [x1, x1]}, target: {kind: kind}}"
    with pytest.raises(archspec.SpecError) as raised:
        archspec.load(write_spec(tmp_path, data))
    text = str(raised.value)
    for part in ("no model input named 'nums'", "received none for 'num', 'mixed'", "received none for 'score'"):
        assert part in text, text
    assert "listed twice" in text


def test_a_column_that_is_not_in_the_file_names_the_file(tmp_path, capsys):
    write_two_heads_csv(tmp_path / "t.csv")
    spec = write_spec(tmp_path, DATA.replace("colour", "colur"))
    assert main(["train", str(spec), "--quiet", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"archspec: error: {tmp_path / 't.csv'}: no column 'colur'; did you mean 'colour'?"), err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_text_cell_in_a_numeric_column_is_reported_by_row(tmp_path, capsys):
    path = write_two_heads_csv(tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = "big"
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    assert main(["train", str(write_spec(tmp_path)), "--quiet"]) == 1
    assert f"{path}:6: column 'size': expected a number, received 'big'" in capsys.readouterr().err


def test_resume_refuses_a_changed_file(tmp_path, capsys):
    path = write_two_heads_csv(tmp_path / "t.csv")
    spec, run = str(write_spec(tmp_path)), str(tmp_path / "run")
    args = ["--quiet", "--backend", "torch", "--out", run, "--checkpoint-every", "1"]
    assert main(["train", spec, *args, "--max-steps", "2"]) == 0
    path.write_text(path.read_text().replace("cat", "ant", 1))
    capsys.readouterr()
    assert main(["train", spec, "--quiet", "--resume", run, "--max-steps", "4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"archspec: error: {path}: changed since the checkpoint in {run}"), err
