"""Data files in the spec: each format and option loads what it says (no framework needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from file_fixtures import sine_series, write_series_csv

import archspec
from archspec.data.files import FileSplits
from archspec.training.preparation import load_splits

MLP = """
name: files
inputs: {{x: {{shape: {shape}}}}}
layers:
{layers}
training: {{loss: {loss}, batch_size: 8, seed: {seed}}}
data: {data}
"""
SOFTMAX3 = "  - {type: flatten}\n  - {type: dense, id: out, units: 3, activation: softmax}"
SIGMOID = "  - {type: flatten}\n  - {type: dense, id: out, units: 1, activation: sigmoid}"
LINEAR = "  - {type: flatten}\n  - {type: dense, id: out, units: 1}"


def write_spec(folder, data, *, shape, loss="sparse_categorical_crossentropy", layers=SOFTMAX3, seed=0):
    path = folder / "spec.yaml"
    path.write_text(MLP.format(shape=shape, layers=layers, loss=loss, data=data, seed=seed))
    return path


def load(path) -> FileSplits:
    spec = archspec.load(path)
    splits = load_splits(spec, None, None)
    assert isinstance(splits, FileSplits)
    return splits


# --- npz --------------------------------------------------------------------------------


def test_npz_named_arrays_relative_to_the_spec_file_and_split_by_the_seed(tmp_path, monkeypatch):
    x = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 3
    np.savez(tmp_path / "arrays.npz", features=x, labels=y, unused=np.zeros(3))
    data = "{format: npz, path: arrays.npz, inputs: {x: features}, targets: {out: labels}, validation_split: 0.2, test_split: 0.25}"
    spec = write_spec(tmp_path, data, shape=[2])
    monkeypatch.chdir("/")  # the path is relative to the spec file, not the current folder
    splits = load(spec)
    assert [len(pair[0]) for pair in splits.as_dict().values()] == [11, 4, 5]
    order = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(splits.test[0], x[np.sort(order[:5])])  # each part in file order
    np.testing.assert_array_equal(splits.validation[1], y[np.sort(order[5:9])])
    np.testing.assert_array_equal(splits.train[0], x[np.sort(order[9:])])
    assert splits.num_classes == 3 and splits.named["train"][0].keys() == {"x"}
    assert splits.named["train"][1].keys() == {"out"}
    again = load(write_spec(tmp_path, data, shape=[2], seed=1))
    assert not np.array_equal(again.test[0], splits.test[0])  # another seed draws other samples


def test_npz_files_per_split_and_normalisation_fitted_on_train_only(tmp_path):
    rng = np.random.default_rng(3)
    train, test = rng.normal(5, 3, size=(30, 4)), rng.normal(-2, 1, size=(10, 4))
    np.savez(tmp_path / "train.npz", x=train, y=rng.normal(size=(30, 1)))
    np.savez(tmp_path / "test.npz", x=test, y=rng.normal(size=(10, 1)))
    for method in ("standardize", "scale"):
        data = (
            f"{{format: npz, train: train.npz, test: test.npz, inputs: {{x: x}}, targets: {{out: y}}, "
            f"normalization: {method}}}"
        )
        splits = load(write_spec(tmp_path, data, shape=[4], loss="mse", layers=LINEAR))
        if method == "standardize":
            np.testing.assert_allclose(splits.train[0].mean(axis=0), 0, atol=1e-12)
            np.testing.assert_allclose(splits.train[0].std(axis=0), 1, atol=1e-12)
            expected = (test - train.mean(axis=0)) / train.std(axis=0)
        else:
            np.testing.assert_allclose(splits.train[0].min(axis=0), 0, atol=1e-12)
            np.testing.assert_allclose(splits.train[0].max(axis=0), 1, atol=1e-12)
            expected = (test - train.min(axis=0)) / (train.max(axis=0) - train.min(axis=0))
        np.testing.assert_allclose(splits.test[0], expected, rtol=1e-12)
        assert splits.preprocessing["normalization"]["method"] == method


# --- csv tables -------------------------------------------------------------------------

TABLE = """height;colour;kind
1.5;red;cat
2.0;blue;dog
NA;red;dog
3.5;green;bird
0.5;blue;cat
2.5;red;bird
"""


def test_csv_one_hot_features_sorted_classes_and_a_delimiter(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE.replace("NA", "1.0"))
    data = "{format: csv, path: t.csv, features: [height, colour], target: kind, delimiter: ';'}"
    splits = load(write_spec(tmp_path, data, shape=[4]))
    x, y = splits.train
    # height, then colour one-hot in sorted order: blue, green, red
    np.testing.assert_array_equal(x[0], [1.5, 0, 0, 1])
    np.testing.assert_array_equal(x[3], [3.5, 0, 1, 0])
    assert splits.class_names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(y, [1, 2, 2, 0, 1, 0])
    assert y.dtype == np.int64
    pre = splits.preprocessing
    assert pre["features"][1] == {"column": "colour", "type": "category", "categories": ["blue", "green", "red"]}


def test_csv_missing_values_drop_rows_or_fill_the_training_mean(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE)
    data = "{{format: csv, path: t.csv, features: [height], target: kind, delimiter: ';', missing: {}}}"
    dropped = load(write_spec(tmp_path, data.format("drop_rows"), shape=[1]))
    np.testing.assert_array_equal(dropped.train[0][:, 0], [1.5, 2.0, 3.5, 0.5, 2.5])
    filled = load(write_spec(tmp_path, data.format("fill_mean"), shape=[1]))
    np.testing.assert_array_equal(filled.train[0][:, 0], [1.5, 2.0, 2.0, 3.5, 0.5, 2.5])  # mean of the rest: 2.0


def test_csv_binary_target_and_features_default_to_every_other_column(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,yes\n3,4,no\n5,6,yes\n7,8,no\n")
    data = "{format: csv, path: t.csv, target: label}"
    splits = load(write_spec(tmp_path, data, shape=[2], loss="binary_crossentropy", layers=SIGMOID))
    np.testing.assert_array_equal(splits.train[0], [[1, 2], [3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(splits.train[1], [[1.0], [0.0], [1.0], [0.0]])  # no < yes
    assert splits.num_classes == 2 and splits.class_names == ["no", "yes"]


def test_csv_numeric_classes_sort_numerically(tmp_path):
    (tmp_path / "t.csv").write_text("a,digit\n" + "".join(f"{k},{k % 11}\n" for k in range(22)))
    data = "{format: csv, path: t.csv, features: [a], target: digit}"
    layers = "  - {type: flatten}\n  - {type: dense, id: out, units: 11, activation: softmax}"
    splits = load(write_spec(tmp_path, data, shape=[1], layers=layers))
    assert splits.class_names == [str(k) for k in range(11)]
    np.testing.assert_array_equal(splits.train[1], np.arange(22) % 11)


def test_csv_categories_come_from_the_training_file(tmp_path):
    (tmp_path / "train.csv").write_text("c,y\nx,1\ny,2\nz,3\n")
    (tmp_path / "test.csv").write_text("c,y\nz,3\nx,1\n")
    data = "{format: csv, train: train.csv, test: test.csv, features: [c], target: y}"
    splits = load(write_spec(tmp_path, data, shape=[3]))
    np.testing.assert_array_equal(splits.test[0], [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(splits.test[1], [2, 0])


# --- time series ------------------------------------------------------------------------


def test_series_windows_in_time_order_never_straddle_a_split(tmp_path):
    values = np.arange(100.0)
    write_series_csv(tmp_path / "s.csv", values)
    data = "{format: csv, path: s.csv, columns: [value], window: 5, horizon: 3, validation_split: 0.2, test_split: 0.2}"
    layers = "  - {type: flatten}\n  - {type: dense, id: out, units: 1}"
    splits = load(write_spec(tmp_path, data, shape=[5, 1], loss="mse", layers=layers))
    x, y = splits.train
    assert x.shape == (60 - 5 - 3 + 1, 5, 1) and y.shape == (53, 1)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y[:, 0], x[:, -1, 0] + 3)
    for name, (first, last) in {"train": (0, 59), "validation": (60, 79), "test": (80, 99)}.items():
        xs, ys = splits.as_dict()[name]
        assert xs.min() == first and ys.max() == last  # windows and targets stay inside their part
        assert len(xs) == (last - first + 1) - 5 - 3 + 1


def test_series_standardised_on_the_training_part_targets_kept_in_their_units(tmp_path):
    values = sine_series(300)
    write_series_csv(tmp_path / "s.csv", values)
    data = "{format: csv, path: s.csv, columns: [value], window: 10, normalization: standardize, test_split: 0.25}"
    layers = "  - {type: gru, units: 2}\n  - {type: dense, units: 1}"
    splits = load(write_spec(tmp_path, data, shape=[10, 1], loss="mse", layers=layers))
    train = values[:225]
    np.testing.assert_allclose(splits.train[0][0, :, 0], (values[:10] - train.mean()) / train.std(), rtol=1e-12)
    np.testing.assert_array_equal(splits.train[1][:, 0], values[10:225])
    np.testing.assert_array_equal(splits.test[1][:, 0], values[235:])


# --- image folders ----------------------------------------------------------------------


def write_images(folder, sizes, mode="RGB", suffix=".png"):
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = {}
    for k, (label, size) in enumerate(sizes):
        (folder / label).mkdir(parents=True, exist_ok=True)
        shape = (size[0], size[1], 3) if mode == "RGB" else tuple(size)
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        Image.fromarray(pixels, mode=mode).save(folder / label / f"{k:02d}{suffix}")
        arrays[(label, k)] = pixels
    return arrays


def test_image_folder_classes_sorted_pixels_scaled_channels_last(tmp_path):
    pictures = write_images(tmp_path / "pics", [("zebra", (4, 5)), ("ant", (4, 5)), ("ant", (4, 5))])
    (tmp_path / "pics" / "ant" / "notes.txt").write_text("not an image")
    data = "{format: image_folder, path: pics}"
    layers = "  - {type: flatten}\n  - {type: dense, id: out, units: 2, activation: softmax}"
    splits = load(write_spec(tmp_path, data, shape=[4, 5, 3], layers=layers))
    assert splits.class_names == ["ant", "zebra"]
    np.testing.assert_array_equal(splits.train[1], [0, 0, 1])
    np.testing.assert_array_equal(splits.train[0][0], pictures[("ant", 1)] / 255)
    assert splits.train[0].min() >= 0 and splits.train[0].max() <= 1


def test_image_folder_resizes_to_size_and_reads_grayscale_jpeg_and_bmp(tmp_path):
    from PIL import Image

    write_images(tmp_path / "pics", [("a", (6, 6)), ("b", (9, 4))], mode="L", suffix=".bmp")
    write_images(tmp_path / "pics", [("b", (3, 3))], mode="RGB", suffix=".jpg")
    data = "{format: image_folder, path: pics, size: [4, 4], color: grayscale, normalization: none}"
    layers = "  - {type: flatten}\n  - {type: dense, id: out, units: 2, activation: softmax}"
    splits = load(write_spec(tmp_path, data, shape=[4, 4, 1], layers=layers))
    assert splits.train[0].shape == (3, 4, 4, 1)
    with Image.open(tmp_path / "pics" / "b" / "01.bmp") as image:
        expected = np.asarray(image.convert("L").resize((4, 4), Image.Resampling.BILINEAR), dtype=np.float64)
    np.testing.assert_array_equal(splits.train[0][2, :, :, 0], expected)  # a/00.bmp, b/00.jpg, b/01.bmp


def test_image_folders_per_split(tmp_path):
    write_images(tmp_path / "train", [("a", (3, 3)), ("b", (3, 3)), ("c", (3, 3))])
    write_images(tmp_path / "val", [("c", (3, 3))])
    data = "{format: image_folder, train: train, validation: val, normalization: standardize}"
    layers = "  - {type: flatten}\n  - {type: dense, id: out, units: 3, activation: softmax}"
    splits = load(write_spec(tmp_path, data, shape=[3, 3, 3], layers=layers))
    np.testing.assert_array_equal(splits.validation[1], [2])
    np.testing.assert_allclose(splits.train[0].mean(axis=(0, 1, 2)), 0, atol=1e-12)  # per channel


# --- the run keeps its preprocessing ----------------------------------------------------


def test_a_run_saves_its_preprocessing_beside_the_weights(tmp_path):
    (tmp_path / "t.csv").write_text(
        "a,b,label\n" + "".join(f"{k},{k % 4},{'yes' if k % 2 else 'no'}\n" for k in range(40))
    )
    data = "{format: csv, path: t.csv, target: label, normalization: scale, test_split: 0.25}"
    spec = write_spec(tmp_path, data, shape=[2], loss="binary_crossentropy", layers=SIGMOID)
    archspec.train(spec, backend="torch", max_steps=2, out=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert saved["class_names"] == ["no", "yes"]
    assert [f["column"] for f in saved["features"]] == ["a", "b"]
    order = np.random.default_rng(0).permutation(40)[10:]  # the training rows
    assert saved["normalization"]["offset"] == [float(order.min()), 0.0]


def test_csv_names_the_specs_input_and_output(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,p\n3,4,q\n5,6,p\n")
    data = "{format: csv, path: t.csv, features: {x: [b, a]}, target: {out: label}}"
    layers = "  - {type: flatten}\n  - {type: dense, id: out, units: 2, activation: softmax}"
    splits = load(write_spec(tmp_path, data, shape=[2], layers=layers))
    np.testing.assert_array_equal(splits.named["train"][0]["x"], [[2, 1], [4, 3], [6, 5]])  # in the order given
    np.testing.assert_array_equal(splits.named["train"][1]["out"], [0, 1, 0])
    wrong = "{format: csv, path: t.csv, features: {x: [a, b]}, target: {head: label}}"
    with pytest.raises(
        archspec.SpecError, match=r"spec.yaml:\d+:\d+: no model output named 'head'; expected one of 'out'"
    ):
        archspec.load(write_spec(tmp_path, wrong, shape=[2], layers=layers))


def test_relative_paths_of_a_spec_given_as_text_are_the_current_folders(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text("a,label\n1,p\n3,q\n")
    monkeypatch.chdir(tmp_path)
    text = MLP.format(
        shape=[1],
        layers=SOFTMAX3.replace("units: 3", "units: 2"),
        loss="sparse_categorical_crossentropy",
        data="{format: csv, path: t.csv, target: label}",
        seed=0,
    )
    splits = load_splits(archspec.load(text), None, None)
    np.testing.assert_array_equal(splits.train[0], [[1], [3]])
