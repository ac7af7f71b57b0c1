"""The file-source configs on real data nobody here wrote (scikit-learn's breast cancer CSV and
8x8 digits written as PNG files) and on a generated series: float64 trajectories agree between
every two backends over 200 steps, float32 runs reach the stated accuracy on each, and
``archspec predict`` on a test file reproduces the run's own predictions exactly."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml
from file_fixtures import config_with_data, sine_series, write_series_csv

import archspec
from archspec.backend import BACKENDS
from archspec.training.preparation import load_splits
from parity.trajectory import assert_same_trajectory

STEPS = 200
FILE_CONFIGS = ("breast_cancer", "digits_images", "sine_series")


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("file_configs")
    return {name: config_with_data(name, folder) for name in FILE_CONFIGS}


@pytest.mark.parametrize("config", FILE_CONFIGS)
def test_file_configs_follow_the_same_trajectory_float64(data_folder, config):
    results = {
        backend: archspec.train(data_folder[config], backend=backend, dtype="float64", max_steps=STEPS, epochs=100)
        for backend in BACKENDS
    }
    assert_same_trajectory(config, results, steps=STEPS)


ACCURACY = {"breast_cancer": 0.95, "digits_images": 0.95}


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(ACCURACY))
def test_real_data_configs_reach_their_accuracy_on_every_backend(data_folder, config):
    accuracies = {}
    for backend in BACKENDS:
        result = archspec.train(data_folder[config], backend=backend, evaluate_every_epoch=False)
        accuracies[backend] = result.final["test"]["accuracy"]
    assert min(accuracies.values()) >= ACCURACY[config], f"{config}: test accuracy {accuracies}"


@pytest.mark.slow
def test_the_series_config_beats_the_last_value(data_folder):
    """The GRU predicts the next value better than repeating the window's last value (one
    backend: the parity test above holds the others to the same trajectory)."""
    result = archspec.train(data_folder["sine_series"], backend="tensorflow", evaluate_every_epoch=False)
    spec = archspec.load(data_folder["sine_series"])
    x, y = load_splits(spec, None, None).test
    pre = yaml.safe_load(data_folder["sine_series"].read_text())["data"]
    assert pre["normalization"] == "standardize"
    values = sine_series()
    train = values[: round(len(values) * 0.7)]
    last = x[:, -1, 0] * train.std() + train.mean()  # undo the standardisation of the inputs
    naive = float(np.mean((last - y[:, 0]) ** 2))
    assert result.final["test"]["loss"] < 0.5 * naive, (result.final["test"]["loss"], naive)


# --- predict ----------------------------------------------------------------------------


def split_files(folder, name, spec_path):
    """The config with its test split as a file of its own (train: / test:), the test file's name."""
    document = yaml.safe_load(spec_path.read_text())
    data = document["data"]
    spec = archspec.load(spec_path)
    if name == "breast_cancer":
        lines = (folder / "breast_cancer.csv").read_text().splitlines()
        order = np.random.default_rng(0).permutation(len(lines) - 1)
        test = set(order[: round(0.2 * (len(lines) - 1))].tolist())
        rows = lines[1:]
        (folder / "bc_train.csv").write_text(
            "\n".join([lines[0], *(r for i, r in enumerate(rows) if i not in test)]) + "\n"
        )
        (folder / "bc_test.csv").write_text("\n".join([lines[0], *(r for i, r in enumerate(rows) if i in test)]) + "\n")
        files, test_file = {"train": "bc_train.csv", "test": "bc_test.csv"}, folder / "bc_test.csv"
    elif name == "digits_images":
        for split in ("digits_train", "digits_test"):
            shutil.rmtree(folder / split, ignore_errors=True)
        for k, path in enumerate(sorted((folder / "digits").glob("*/*.png"))):
            split = "digits_test" if k % 5 == 0 else "digits_train"
            (folder / split / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / split / path.parent.name / path.name)
        files, test_file = {"train": "digits_train", "test": "digits_test"}, folder / "digits_test"
    else:
        values = sine_series()
        write_series_csv(folder / "s_train.csv", values[:900])
        write_series_csv(folder / "s_test.csv", values[900:])
        files, test_file = {"train": "s_train.csv", "test": "s_test.csv"}, folder / "s_test.csv"
    for key in ("path", "validation_split", "test_split"):
        data.pop(key, None)
    data.update(files)
    path = folder / f"{name}_files.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert spec.name == archspec.load(path).name
    return path, test_file


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", FILE_CONFIGS)
def test_predict_reproduces_the_runs_test_predictions(data_folder, tmp_path, config, backend):
    folder = data_folder[config].parent
    spec_path, test_file = split_files(folder, config, data_folder[config])
    run = tmp_path / "run"
    result = archspec.train(spec_path, backend=backend, max_steps=30, out=run, evaluate_every_epoch=False)
    splits = load_splits(archspec.load(spec_path), None, None)
    expected = result.model.predict(splits.test[0].astype(np.float32)).reshape(len(splits.test[0]), -1)

    out = tmp_path / "predictions.csv"
    predictions = archspec.predict(spec_path, run / "weights.safetensors", test_file, backend=backend, out=out)
    np.testing.assert_array_equal(predictions.outputs[: len(expected)], expected)  # exactly
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1 : len(expected) + 1]
    if config == "sine_series":
        assert header == ["sample", "value"]
        written = np.array([[float(v) for v in row[1:]] for row in body])
        np.testing.assert_array_equal(written, expected)  # repr round-trips
        assert len(rows) - 1 == 300 - 24 + 1  # every full window, also the last (no target needed)
        return
    written = np.array([[float(v) for v in row[2:]] for row in body])
    if config == "breast_cancer":
        assert header == ["sample", "predicted", "p_benign", "p_malignant"]
        np.testing.assert_array_equal(written[:, 1], expected[:, 0])  # the sigmoid is P(malignant)
        np.testing.assert_array_equal(written[:, 0], 1.0 - expected[:, 0].astype(np.float64))
        labels = [splits.class_names[int(v)] for v in splits.test[1][:, 0]]
    else:
        assert header[:3] == ["sample", "predicted", "p_0"] and len(header) == 12
        np.testing.assert_array_equal(written, expected)
        labels = [splits.class_names[int(v)] for v in splits.test[1]]
    predicted = [row[1] for row in body]
    accuracy = np.mean([a == b for a, b in zip(predicted, labels, strict=True)])
    assert accuracy == pytest.approx(result.final["test"]["accuracy"], abs=1e-6)


def test_compare_trains_a_file_config_in_every_backend(data_folder, tmp_path):
    """`compare` runs each backend in its own process from a copy of the spec: the data files
    stay found (absolute paths) and the test predictions are read from them."""
    archspec.compare(data_folder["breast_cancer"], max_steps=10, dtype="float64", out=tmp_path / "cmp")
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert results["backends"] == list(BACKENDS)
    for pair, agreement in results["agreement"].items():
        assert agreement["max relative per-step loss difference"] <= 1e-9, pair
        assert agreement["share of test predictions that agree"] == 1.0, pair
