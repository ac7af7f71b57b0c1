"""`archspec.compare` on a model with two inputs and two outputs (from an NPZ file): every
backend follows the same float64 trajectory, every output's loss and metrics are in the
table, and the predictions of both heads agree between every two backends."""

import numpy as np

import archspec
from archspec.backend import BACKENDS

SPEC = """
name: two-heads-compare
inputs:
  a: {shape: [6]}
  b: {shape: [4]}
layers:
  - {id: left, type: dense, units: 8, activation: tanh, inputs: [a]}
  - {id: right, type: dense, units: 8, activation: relu, inputs: [b]}
  - {id: joined, type: concatenate, inputs: [left, right]}
  - {id: kind, type: dense, units: 3, activation: softmax, inputs: [joined]}
  - {id: even, type: dense, units: 1, activation: sigmoid, inputs: [joined]}
outputs: [kind, even]
training:
  loss: {kind: sparse_categorical_crossentropy, even: binary_crossentropy}
  loss_weights: {kind: 1.0, even: 2.0}
  metrics: [accuracy]
  batch_size: 16
  seed: 1
data: {format: npz, path: data.npz, inputs: {a: a, b: b}, targets: {kind: kind, even: even}, test_split: 0.25}
"""


def test_compare_two_outputs(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(128, 6)), rng.normal(size=(128, 4))
    kind = np.argmax(a[:, :3], axis=1)
    np.savez(tmp_path / "data.npz", a=a, b=b, kind=kind, even=(b[:, 0] > 0).astype(np.int64))
    (tmp_path / "spec.yaml").write_text(SPEC)
    report = archspec.compare(tmp_path / "spec.yaml", max_steps=12, dtype="float64", out=tmp_path / "out")
    assert report.backends == BACKENDS and len(report.agreement) == len(BACKENDS) * (len(BACKENDS) - 1) // 2
    for pair, measures in report.agreement.items():
        assert measures["max relative per-step loss difference"] <= 1e-9, pair
        assert measures["share of test predictions that agree"] == 1.0, pair
    for backend in BACKENDS:
        final = report.results[backend]["final"]["test"]
        assert set(final) == {"loss", "kind_loss", "kind_accuracy", "even_loss", "even_accuracy"}
        assert abs(final["loss"] - (final["kind_loss"] + 2.0 * final["even_loss"])) <= 1e-12 * final["loss"]
    table = report.table()
    assert "test kind_accuracy" in table and "test even_loss" in table
    assert (tmp_path / "out" / "curves.png").exists()
