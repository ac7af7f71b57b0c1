"""A model with two inputs and two outputs trained from a CSV table (numeric columns to one
input, a text and a numeric column to the other; a class and a value out): every backend
follows the same float64 trajectory, and ``archspec predict`` on the test file reproduces the
run's own test predictions exactly, on every backend (so does an NPZ source)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from file_fixtures import write_two_heads_csv

import archspec
from archspec.backend import BACKENDS
from archspec.errors import DataError
from archspec.training.preparation import load_splits
from parity.trajectory import assert_same_trajectory

STEPS = 30
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
  optimizer: {{type: adam, learning_rate: 0.01}}
  batch_size: 16
  seed: 3
data: {data}
"""
FILES = "{format: csv, train: train.csv, test: test.csv, features: {num: [x1, x2, x3], mixed: [colour, size]}, target: {kind: kind, score: score}, normalization: standardize}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv_several")
    lines = write_two_heads_csv(folder / "all.csv").read_text().splitlines()
    (folder / "train.csv").write_text("\n".join(lines[:73]) + "\n")
    (folder / "test.csv").write_text("\n".join([lines[0], *lines[73:]]) + "\n")
    (folder / "spec.yaml").write_text(SPEC.format(data=FILES))
    return folder


def test_every_backend_follows_the_same_trajectory_float64(folder):
    results = {
        backend: archspec.train(folder / "spec.yaml", backend=backend, dtype="float64", max_steps=STEPS, epochs=100)
        for backend in BACKENDS
    }
    assert_same_trajectory("csv-two-heads", results, steps=STEPS)
    a = results[BACKENDS[0]].step_losses
    assert a[-1] < 0.7 * a[0], (a[0], a[-1])
    first, *others = (results[backend].final["test"] for backend in BACKENDS)
    for final in others:
        for key in ("loss", "kind_loss", "kind_accuracy", "score_loss", "score_mae"):
            assert final[key] == pytest.approx(first[key], rel=1e-9), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_reproduces_the_runs_test_predictions(folder, tmp_path, backend):
    run = tmp_path / "run"
    result = archspec.train(folder / "spec.yaml", backend=backend, max_steps=12, out=run, evaluate_every_epoch=False)
    x, y = load_splits(archspec.load(folder / "spec.yaml"), None, None).named["test"]
    expected = result.model.predict({name: array.astype(np.float32) for name, array in x.items()})
    assert isinstance(expected, dict)

    out = tmp_path / "predictions.csv"
    predictions = archspec.predict(
        folder / "spec.yaml", run / "weights.safetensors", folder / "test.csv", out=out, backend=backend
    )
    assert predictions.samples == list(range(2, 26))  # the file's lines
    np.testing.assert_array_equal(predictions["kind"].outputs, expected["kind"])  # exactly
    np.testing.assert_array_equal(predictions["score"].outputs, expected["score"])
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["sample", "kind_predicted", "kind_p_ant", "kind_p_bee", "kind_p_cat", "score"]
    written = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    np.testing.assert_array_equal(written[:, :3], expected["kind"])  # repr round-trips
    np.testing.assert_array_equal(written[:, 3], expected["score"][:, 0])
    labels = [["ant", "bee", "cat"][k] for k in y["kind"]]
    accuracy = np.mean([row[1] == label for row, label in zip(rows[1:], labels, strict=True)])
    assert accuracy == pytest.approx(result.final["test"]["kind_accuracy"], abs=1e-6)
    with pytest.raises(archspec.UsageError, match="the model has outputs"):
        _ = predictions.predicted

    (tmp_path / "new.csv").write_text("x1,x2,x3,colour,size\n0.1,0.2,-3,red,2\n0.5,1,-2,pink,3\n")
    with pytest.raises(DataError, match=r"new.csv:3: column 'colour': unseen category 'pink'"):
        archspec.predict(folder / "spec.yaml", run / "weights.safetensors", tmp_path / "new.csv", backend=backend)


NPZ_SPEC = SPEC.replace("  mixed: {{shape: [4]}}", "  mixed: {{shape: [2]}}").format(
    data="{format: npz, train: train.npz, test: test.npz, inputs: {num: a, mixed: b}, targets: {kind: k, score: s}}"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_from_npz_arrays_by_input(tmp_path, backend):
    rng = np.random.default_rng(1)
    for split, count in (("train", 48), ("test", 10)):
        a, b = rng.normal(size=(count, 3)), rng.normal(size=(count, 2))
        k, s = np.argmax(a, axis=1), a[:, :1] + b[:, :1]
        np.savez(tmp_path / f"{split}.npz", a=a, b=b, k=k, s=s)
    (tmp_path / "spec.yaml").write_text(NPZ_SPEC)
    result = archspec.train(tmp_path / "spec.yaml", backend=backend, max_steps=6, out=tmp_path / "run")
    x, _ = load_splits(archspec.load(tmp_path / "spec.yaml"), None, None).named["test"]
    expected = result.model.predict({name: array.astype(np.float32) for name, array in x.items()})
    assert isinstance(expected, dict)
    out = tmp_path / "p.csv"
    predictions = archspec.predict(
        tmp_path / "spec.yaml",
        tmp_path / "run" / "weights.safetensors",
        tmp_path / "test.npz",
        out=out,
        backend=backend,
    )
    np.testing.assert_array_equal(predictions["kind"].outputs, expected["kind"])
    np.testing.assert_array_equal(predictions["score"].outputs, expected["score"])
    assert predictions["kind"].classes == ["0", "1", "2"]
    header = out.read_text().splitlines()[0]
    assert header == "sample,kind_predicted,kind_p_0,kind_p_1,kind_p_2,score"
