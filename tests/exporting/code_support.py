"""Shared by the code-format tests: export a spec with canonical weights to a code file and its
inputs, and the spec's metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from archspec.api import graph_of
from archspec.exporting import ExportMetadata
from archspec.version import __version__
from archspec.weights import spec_hash


def metadata(spec, outputs) -> ExportMetadata:
    inputs = {name: ((None, *item.shape), item.dtype) for name, item in spec.inputs.items()}
    return ExportMetadata(spec_hash(spec), __version__, inputs, list(outputs), ["zero", "one"])


def export(code_format, spec, weights, folder: Path, name: str, dtype: str) -> Path:
    out = folder / (name if "." in name else f"{name}.py")
    graph = graph_of(spec)
    code_format.write(spec, weights, out, dtype, metadata(spec, graph.outputs))
    return out


def random_inputs(spec, batch: int, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Float inputs from a normal distribution; integer ids in [0, 4) (0 is padding where masked),
    with padding at the end and in the middle of sequences."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, item in spec.inputs.items():
        shape = (batch, *item.shape)
        if item.dtype == "float":
            inputs[name] = rng.normal(size=shape).astype(dtype)
        else:
            inputs[name] = rng.integers(0, 4, size=shape).astype(item.dtype)
    return inputs


def training_call(format_name: str, out: Path, inputs: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    """One training-mode call of the generated model at dropout step ``step``."""
    from archspec.exporting.code._writer import import_file, weights_path

    module = import_file(out)
    model = module.load_model(weights_path(out), "float64")
    arrays = [inputs[name] for name in module.INPUTS]
    if format_name == "torch_code":
        import torch

        model.train()
        model.step = step
        with torch.no_grad():
            result = model(*(torch.from_numpy(array) for array in arrays))
        values = result if isinstance(result, tuple) else (result,)
        return {name: value.numpy() for name, value in zip(module.OUTPUTS, values)}
    steps = [variable for variable in model.weights if variable.path.endswith("dropout_step")]
    assert steps, "the Keras model has no dropout step"
    for variable in steps:
        variable.assign(step)
    result = model(arrays if len(arrays) > 1 else arrays[0], training=True)
    values = result if isinstance(result, (list, tuple)) else [result]
    return {name: np.asarray(value) for name, value in zip(module.OUTPUTS, values)}
