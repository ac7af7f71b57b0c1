"""The ``jax_export`` format: a serialised ``jax.export`` program that runs with JAX alone, at any
batch size, in float32 and float64, with integer ids, masks, recurrent and attention layers and
two outputs, as the numpy reference computes them."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from archspec.api import load_with_graph
from archspec.exporting.exporter import export
from archspec.reference.forward import reference_forward
from exporting.test_export import SEQUENCES, weights_of

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}

# Reads the file with zipfile, json and jax only (no archspec), as a consumer of the file would.
STANDALONE = """
import json, sys, zipfile
import jax
import numpy as np
path, dtype, inputs = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
with zipfile.ZipFile(path) as archive:
    metadata = json.loads(archive.read("archspec.json"))
    program = archive.read("exported.bin")
with jax.enable_x64(dtype == "float64"):
    exported = jax.export.deserialize(bytearray(program))
    arrays = [np.asarray(inputs[name], dtype=aval.dtype) for name, aval in zip(metadata["inputs"], exported.in_avals)]
    outputs = exported.call(*arrays)
np.savez(sys.argv[4], **{name: np.asarray(value) for name, value in zip(metadata["outputs"], outputs)})
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequences_model_runs_with_jax_alone_at_other_batch_sizes(tmp_path, dtype):
    weights = weights_of(SEQUENCES)
    out = tmp_path / "sequences.jaxexport"
    result = export(SEQUENCES, weights, format="jax_export", out=out, dtype=dtype)
    assert result.verification is not None and result.verification.passed
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["archspec.json", "exported.bin"]
        metadata = json.loads(archive.read("archspec.json"))
    assert list(metadata["inputs"]) == ["ids", "extra"] and metadata["outputs"] == ["out", "gru"]

    graph = load_with_graph(SEQUENCES)[1]
    rng = np.random.default_rng(4)
    for batch in (1, 9):  # traced with a symbolic batch dimension
        ids = rng.integers(1, 9, size=(batch, 7))
        ids[:, 5:] = 0  # padding at the end: the mask matters
        extra = rng.standard_normal((batch, 7, 2)).astype(dtype)
        np.savez(tmp_path / "inputs.npz", ids=ids, extra=extra)
        done = subprocess.run(
            [sys.executable, "-c", STANDALONE, str(out), dtype, str(tmp_path / "inputs.npz"), str(tmp_path / "o.npz")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs = np.load(tmp_path / "o.npz")
        expected = reference_forward(graph, weights, {"ids": ids, "extra": extra.astype(np.float64)}).outputs
        for name in ("out", "gru"):
            assert outputs[name].dtype == np.dtype(dtype) and outputs[name].shape == expected[name].shape
            error = float(np.max(np.abs(outputs[name] - expected[name])) / np.max(np.abs(expected[name])))
            assert error <= TOLERANCE[dtype], f"{name}, batch {batch}: relative error {error:.3g}"
