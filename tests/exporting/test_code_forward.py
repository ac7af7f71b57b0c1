"""The code formats compute what archspec computes: every config and every layer type, exported
to a torch or Keras file with archspec's weights, run on the same inputs as archspec's compiled
model of the same framework (float64 within 1e-12, float32 within 1e-5, relative to the output's
scale), in inference mode and in training mode (dropout masks of a given step); and the
generated files pass the project's ruff check and format."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import archspec
from archspec.exporting.code.keras_code import KerasCode
from archspec.exporting.code.torch_code import TorchCode

from .cases import CASES
from .code_support import export, random_inputs, training_call

FORMATS = {"torch_code": (TorchCode(), "torch"), "keras_code": (KerasCode(), "tensorflow")}
BOUNDS = {"float64": 1e-12, "float32": 1e-5}
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def folder(format_name: str, dtype: str) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"archspec-{format_name}-{dtype}-"))


@functools.cache
def exported(format_name: str, case: str, dtype: str):
    """(archspec's compiled model, the loaded runner of the exported file, the file)."""
    code_format, backend = FORMATS[format_name]
    spec = archspec.load(CASES[case].encode())
    model = archspec.compile(spec, backend=backend, dtype=dtype)
    out = export(code_format, spec, model.get_weights(), folder(format_name, dtype), case, dtype)
    return model, code_format.load(out, dtype), out


def sequence_padding(inputs: dict[str, np.ndarray]) -> None:
    """Padded steps (all features 0: the masking layer's value) at the end and in the middle."""
    x = inputs.get("x")
    if x is not None and x.ndim == 3:
        x[:, -2:] = 0.0
        x[1, 2] = 0.0
        x[2] = 0.0


def assert_close(label: str, expected: np.ndarray, received: np.ndarray, dtype: str) -> None:
    assert expected.shape == received.shape, f"{label}: shape {received.shape}, expected {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    difference = float(np.max(np.abs(expected.astype(np.float64) - received), initial=0.0))
    assert difference <= BOUNDS[dtype] * scale, f"{label}: differs by {difference:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("dtype", sorted(BOUNDS))
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_generated_model_computes_archspec_s_outputs(format_name, case, dtype):
    model, run, _ = exported(format_name, case, dtype)
    inputs = random_inputs(model.spec, 5, dtype)
    sequence_padding(inputs)
    expected = model.predict(inputs)
    expected = expected if isinstance(expected, dict) else {model.graph.outputs[0]: expected}
    received = run(inputs)
    assert sorted(received) == sorted(expected)
    for name in expected:
        assert_close(f"{case} {name}", expected[name], received[name], dtype)


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_generated_files_pass_ruff(format_name):
    for case in sorted(CASES):
        exported(format_name, case, "float64")
    files = sorted(str(path) for path in folder(format_name, "float64").glob("*.py"))
    config = str(ROOT / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--config", config, *files], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", ["mnist_mlp", "every_sequence_layer", "every_image_layer"])
@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_training_mode_draws_archspec_s_dropout_masks(format_name, case):
    """A training-mode call of the generated model at dropout step 3 equals archspec's forward at step 3."""
    model, _, out = exported(format_name, case, "float64")
    inputs = random_inputs(model.spec, 4, "float64", seed=1)
    sequence_padding(inputs)
    output = model.graph.outputs[0]
    expected = model.forward(inputs, training=True, step=3)[output]
    received = training_call(format_name, out, inputs, step=3)[output]
    assert_close(f"{case} training", expected, received, "float64")
    other_step = model.forward(inputs, training=True, step=4)[output]
    assert not np.allclose(expected, other_step), "the dropout masks do not depend on the step"


def test_metadata_is_in_the_file():
    _, _, out = exported("torch_code", "mnist_mlp", "float64")
    text = out.read_text()
    spec = archspec.load(CASES["mnist_mlp"].encode())
    from archspec.weights import spec_hash

    assert f'SPEC_HASH = "{spec_hash(spec)}"' in text
    assert 'INPUTS = {"image": [[None, 784], "float"]}' in text
    assert 'CLASS_NAMES = ["zero", "one"]' in text
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports and not [line for line in imports if "archspec" in line], imports


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_a_file_name_without_py_is_refused_and_nothing_is_written(format_name, tmp_path):
    from archspec.errors import UsageError

    spec = archspec.load(CASES["linear_regression"].encode())
    weights = archspec.compile(spec, backend="torch", dtype="float64").get_weights()
    with pytest.raises(UsageError, match=r"expected a code file name ending in \.py, received"):
        export(FORMATS[format_name][0], spec, weights, tmp_path, "model.txt", "float64")
    assert list(tmp_path.iterdir()) == []


def random_targets(loss: str, output: np.ndarray, rng) -> np.ndarray:
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, output.shape[1], size=len(output))
    if loss == "categorical_crossentropy":
        return np.eye(output.shape[1])[rng.integers(0, output.shape[1], size=len(output))]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, size=output.shape).astype(np.float64)
    return rng.normal(size=output.shape)


LOSS_CASES = ["mnist_mlp", "breast_cancer", "logistic_regression", "linear_regression", "torch_example", "sine_series"]


@pytest.mark.parametrize("case", LOSS_CASES)
@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_the_file_s_loss_function_is_archspec_s_loss(format_name, case):
    """loss_function(logits, target) of the file equals archspec's loss of the same logits."""
    from archspec.exporting.code._writer import import_file, weights_path
    from archspec.losses import loss_value

    model, _, out = exported(format_name, case, "float64")
    spec, head = model.spec, model.graph.heads[0]
    module = import_file(out)
    generated = module.load_model(
        weights_path(out), "float64", **({"return_logits": True} if format_name == "keras_code" else {})
    )
    inputs = random_inputs(spec, 6, "float64")
    if format_name == "torch_code":
        import torch

        logits = generated(*(torch.from_numpy(inputs[name]) for name in module.INPUTS), return_logits=True)
    else:
        arrays = [inputs[name] for name in module.INPUTS]
        logits = generated(arrays if len(arrays) > 1 else arrays[0], training=False)
    target = random_targets(
        spec.training.loss,
        np.asarray(logits.detach() if format_name == "torch_code" else logits),
        np.random.default_rng(2),
    )
    expected_logits = model.forward(inputs)[head.logits]
    expected = loss_value(spec.training.loss, expected_logits, target, from_logits=head.from_logits)
    if format_name == "torch_code":
        received = float(module.loss_function(logits, torch.from_numpy(target)).detach())
    else:
        received = float(module.loss_function(logits, target))
    assert abs(received - expected) <= 1e-12 * max(1.0, abs(expected)), (received, expected)


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_the_file_reads_the_weights_beside_it_under_its_own_name(format_name, tmp_path):
    """An exporter writes to a temporary name and renames: the code finds its weights by its own name."""
    from archspec.exporting.code import weights_path

    code_format = FORMATS[format_name][0]
    spec = archspec.load(CASES["linear_regression"].encode())
    model = archspec.compile(spec, backend=FORMATS[format_name][1], dtype="float64")
    partial = export(code_format, spec, model.get_weights(), tmp_path, ".model.partial-1.py", "float64")
    out = tmp_path / "model.py"
    partial.rename(out)
    weights_path(partial).rename(weights_path(out))
    inputs = random_inputs(spec, 3, "float64")
    assert_close("renamed", model.predict(inputs), code_format.load(out, "float64")(inputs)["dense_1"], "float64")
