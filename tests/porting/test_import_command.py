"""``archspec import``: files written only after the proof passes, one-line errors, and a
``.keras`` file holding Python code refused without running it."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

import archspec
from archspec.backend import BACKENDS
from archspec.cli import main
from archspec.porting import command
from porting.support import randomize


def saved_model(path):
    model = keras.Sequential(
        [
            keras.Input((6,), name="x"),
            layers.Dense(4, activation="relu", name="dense"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    randomize(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(path)
    return model


def test_import_writes_the_spec_and_weights_and_prints_the_proof(tmp_path, capsys):
    model = saved_model(tmp_path / "model.keras")
    assert main(["import", str(tmp_path / "model.keras"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "proof passed" in out and out.count(" ok") == 2 * len(BACKENDS)  # every backend, float64 and float32
    compiled = archspec.compile(tmp_path / "out" / "spec.yaml", "torch", "float64")
    archspec.load_weights(compiled, tmp_path / "out" / "weights.safetensors")
    x = np.random.default_rng(0).standard_normal((4, 6))
    expected = keras.ops.convert_to_numpy(model(x.astype(np.float32)))
    assert np.abs(compiled.predict(x) - expected).max() < 1e-5


def test_a_lambda_layer_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    # Saved as Python bytecode (with its defaults), which would write the marker when called;
    # a lambda holds no with-statement, so it opens the file inline.
    leave_a_mark = layers.Lambda(
        lambda t, path=str(marker): (open(path, "w").write("ran"), t)[1],  # noqa: SIM115
        name="marker",
    )
    inputs = keras.Input((4,))
    keras.Model(inputs, layers.Dense(2)(leave_a_mark(inputs))).save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran it; loading must not
    assert main(["import", str(tmp_path / "lambda.keras"), "--out", str(tmp_path / "out")]) == 1
    assert "(Lambda): holds Python code" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_an_unsupported_model_writes_nothing(tmp_path, capsys):
    inputs = keras.Input((4, 4, 2))
    outputs = layers.Conv2D(2, 3, groups=2, name="grouped")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "grouped.keras")
    assert main(["import", str(tmp_path / "grouped.keras"), "--out", str(tmp_path / "out")]) == 1
    assert "grouped (Conv2D): expected groups=1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_failed_proof_exits_1_and_writes_nothing(tmp_path, capsys, monkeypatch):
    saved_model(tmp_path / "model.keras")
    real = command.import_keras

    def wrong_port(model):
        imported = real(model)
        imported.weights["dense.bias"] = imported.weights["dense.bias"] + np.float32(0.01)
        return imported

    monkeypatch.setattr(command, "import_keras", wrong_port)
    assert main(["import", str(tmp_path / "model.keras"), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "proof FAILED" in captured.out and "first difference: layer 'dense' (dense)" in captured.out
    assert "nothing written" in captured.err and not (tmp_path / "out").exists()


def test_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["import", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "out")]) == 2
    assert "missing.keras" in capsys.readouterr().err
    assert main(["import", "model.onnx", "--out", str(tmp_path / "out")]) == 2
    assert "expected MODEL.keras or PATH.py:FACTORY, received 'model.onnx'" in capsys.readouterr().err
    (tmp_path / "net.py").write_text("def build():\n    raise SystemExit('must not run')\n")
    assert main(["import", f"{tmp_path / 'net.py'}:build", "--out", str(tmp_path / "out")]) == 2
    assert "expected --input-shape for a torch module" in capsys.readouterr().err


TORCH_FACTORY = """
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def build():
    torch.manual_seed(0)
    return Net()
"""


def test_import_of_a_torch_factory_writes_a_channels_last_spec_and_proves_it(tmp_path, capsys):
    (tmp_path / "net.py").write_text(TORCH_FACTORY)
    source = f"{tmp_path / 'net.py'}:build"
    assert main(["import", source, "--input-shape", "1,14,14", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "proof passed" in out and out.count(" ok") == 2 * len(BACKENDS)  # every backend, float64 and float32
    spec = archspec.load(tmp_path / "out" / "spec.yaml")
    assert next(iter(spec.inputs.values())).shape == [14, 14, 1]  # NCHW (1, 14, 14) read channels-last
    assert (tmp_path / "out" / "weights.safetensors").exists()
