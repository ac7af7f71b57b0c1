"""Bad training data is refused before the first step, with one DataError that says which split
and array is wrong, what was expected and what was received."""

import numpy as np
import pytest

import archspec
from archspec.errors import DataError

HEAD = "name: data\ntraining: {{loss: {loss}, batch_size: 4}}\n"
SPECS = {
    "sparse": HEAD.format(loss="sparse_categorical_crossentropy")
    + "inputs: {x: {shape: [3]}}\nlayers: [{type: dense, units: 3, activation: softmax}]\n",
    "categorical": HEAD.format(loss="categorical_crossentropy")
    + "inputs: {x: {shape: [3]}}\nlayers: [{type: dense, units: 3, activation: softmax}]\n",
    "binary": HEAD.format(loss="binary_crossentropy")
    + "inputs: {x: {shape: [3]}}\nlayers: [{type: dense, units: 1, activation: sigmoid}]\n",
    "mse": HEAD.format(loss="mse") + "inputs: {x: {shape: [3]}}\nlayers: [{type: dense, units: 2}]\n",
    "embedding": HEAD.format(loss="sparse_categorical_crossentropy")
    + "inputs: {ids: {shape: [3], dtype: int64}}\nlayers: [{type: embedding, input_dim: 5, output_dim: 2}, "
    "{type: flatten}, {type: dense, units: 3, activation: softmax}]\n",
}
X = np.arange(24, dtype=np.float32).reshape(8, 3) / 24
LABELS = np.arange(8) % 3


def _with(array, index, value):
    array = np.array(array)
    array[index] = value
    return array


CASES = {
    "x of the wrong sample shape": (
        "sparse",
        (np.zeros((8, 5)), LABELS),
        r"train.x: input 'x' expected samples of shape \[3\], received \[5\]",
    ),
    "x without a sample axis": ("sparse", (np.zeros(8), LABELS), r"train.x: expected shape \(N, ...features\)"),
    "x of strings": ("sparse", (np.full((8, 3), "a"), LABELS), "train.x: expected a numeric"),
    "x of complex numbers": ("sparse", (X.astype(np.complex64), LABELS), "train.x: expected a numeric"),
    "NaN in x": ("sparse", (_with(X, (5, 1), np.nan), LABELS), r"train.x: expected finite values. .* index \(5, 1\)"),
    "infinity in validation x": (
        "sparse",
        {"train": (X, LABELS), "validation": (_with(X, (0, 0), np.inf), LABELS)},
        "validation.x: expected finite values",
    ),
    "x too large for float32": (
        "sparse",
        (_with(X.astype(np.float64), (2, 2), 1e300), LABELS),
        "train.x as float32: expected finite values",
    ),
    "x and y of different lengths": ("sparse", (X, LABELS[:7]), "x has 8, y has 7"),
    "no samples": ("sparse", (X[:0], LABELS[:0]), "expected at least one sample"),
    "label outside the classes": (
        "sparse",
        (X, _with(LABELS, 3, 3)),
        r"expected class labels 0..2, received 3 at index \(3,\)",
    ),
    "negative label": ("sparse", (X, _with(LABELS, 0, -1)), "expected class labels 0..2, received -1"),
    "float labels for sparse CE": (
        "sparse",
        (X, LABELS.astype(np.float64)),
        "expected integer class labels, received float64",
    ),
    "one-hot labels for sparse CE": (
        "sparse",
        (X, np.eye(3, dtype=np.int64)[LABELS]),
        r"expected class labels of shape \(N,\)",
    ),
    "labels of three axes": (
        "sparse",
        (X, LABELS.reshape(8, 1, 1)),
        r"expected targets of shape \(N,\) or \(N, outputs\)",
    ),
    "one-hot width mismatch": (
        "categorical",
        (X, np.eye(4)[LABELS]),
        "expected one-hot rows of width 3.*received width 4",
    ),
    "rows that are not one-hot": (
        "categorical",
        (X, _with(np.eye(3)[LABELS], (4, 0), 1)),
        r"one-hot rows .*received row 4",
    ),
    "soft targets for categorical CE": ("categorical", (X, np.full((8, 3), 1 / 3)), "expected class labels 0..2"),
    "non-0/1 targets for binary CE": (
        "binary",
        (X, _with((LABELS % 2).astype(float), 6, 0.5)),
        "expected class labels 0..1, received 0.5",
    ),
    "target 2 for binary CE": ("binary", (X, (LABELS == 1).astype(int) * 2), "expected class labels 0..1, received 2"),
    "two targets for binary CE": (
        "binary",
        (X, np.eye(2, dtype=int)[LABELS % 2]),
        r"expected targets of shape \(N,\) or \(N, 1\)",
    ),
    "regression targets of the wrong width": ("mse", (X, np.zeros((8, 3))), r"expected 2 target value\(s\) per sample"),
    "NaN in a regression target": (
        "mse",
        (X, _with(np.zeros((8, 2)), (7, 1), np.nan)),
        "train.y: expected finite values",
    ),
    "float ids for an embedding": (
        "embedding",
        (X, LABELS),
        r"input 'ids' \(int64\) expected integer ids, received an array of float32",
    ),
    "ids outside the embedding": (
        "embedding",
        (_with(np.zeros((8, 3), int), (1, 2), 5), LABELS),
        r"expected ids in \[0, 4\], received ids from 0 to 5",
    ),
}


class NoStep:
    def on_step_end(self, step, loss):
        raise AssertionError("a training step ran on data that should have been refused")


@pytest.mark.parametrize("case", CASES)
def test_bad_data_is_refused_with_one_clear_data_error(case):
    kind, data, message = CASES[case]
    with pytest.raises(DataError, match=message) as caught:
        archspec.train(SPECS[kind], backend="torch", data=data, callbacks=[NoStep()])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "kind, y",
    [
        ("sparse", LABELS.astype(np.uint8)),
        ("categorical", LABELS),
        ("categorical", np.eye(3, dtype=np.float32)[LABELS]),
        ("binary", (LABELS % 2).astype(bool)),
        ("binary", (LABELS % 2).astype(np.float64).reshape(8, 1)),
        ("mse", np.ones((8, 2), dtype=np.int64)),
    ],
)
def test_every_accepted_target_layout_trains(kind, y):
    result = archspec.train(SPECS[kind], backend="torch", data=(X, y), evaluate_every_epoch=False)
    assert result.steps == 2 and np.isfinite(result.step_losses).all()
