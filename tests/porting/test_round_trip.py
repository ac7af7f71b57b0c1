"""Round trips: every config compiled on the TensorFlow backend and imported back with
``from_keras`` gives the same spec and bit-identical weights.

"The same spec" is the architecture: inputs, every node's type and options, how nodes connect,
the outputs. Initialisers and regularisers are left out of the comparison: archspec builds its
Keras layers without them (initial values come from numpy, penalties from the engine), so a
compiled model cannot carry them back; a Keras model of the user's own does (test_keras_import).
"""

from __future__ import annotations

import numpy as np
import pytest
from paths import CONFIGS

import archspec
from archspec.api import graph_of
from archspec.porting import import_keras
from archspec.porting.proof import prove

CONFIG_NAMES = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
_WINDOWS = ("kernel_size", "strides", "dilation_rate", "pool_size")


def _options(layer) -> dict:
    """A node's options, without graph fields, initialisers and regularisers; window sizes per axis."""
    data = layer.model_dump(mode="json", exclude={"id", "inputs"})
    rank = 2 if layer.type.endswith("2d") else 1
    if "pool_size" in data and data.get("strides") is None:
        data["strides"] = data["pool_size"]
    for key in _WINDOWS:
        if isinstance(data.get(key), int):
            data[key] = [data[key]] * rank
    if "layer" in data:
        data["layer"] = {k: v for k, v in data["layer"].items() if not k.endswith(("_initializer", "_regularizer"))}
    return {k: v for k, v in data.items() if not k.endswith(("_initializer", "_regularizer"))}


def architecture(spec) -> dict:
    graph = graph_of(spec)
    return {
        "inputs": {name: (list(i.shape), i.dtype) for name, i in spec.inputs.items()},
        "nodes": [(node.id, node.inputs, _options(node.layer)) for node in graph.nodes],
        "outputs": list(graph.outputs),
    }


def test_every_config_is_covered():
    assert len(CONFIG_NAMES) == 19


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_compiled_config_imports_back_to_the_same_spec_and_weights(name):
    spec = archspec.load(CONFIGS / f"{name}.yaml")
    model = archspec.compile(spec, "tensorflow")
    imported = import_keras(model.native)
    back = archspec.load(imported.document)
    assert architecture(back) == architecture(spec)
    expected = model.get_weights()
    assert list(imported.weights) == list(expected)
    for key, value in expected.items():
        assert imported.weights[key].dtype == value.dtype and np.array_equal(imported.weights[key], value), key


@pytest.mark.parametrize("name", ["sequences_masked_lstm", "sequences_masked_transformer"])
def test_the_proof_passes_on_a_compiled_masked_config(name):
    report = prove(import_keras(archspec.compile(CONFIGS / f"{name}.yaml", "tensorflow").native))
    assert report.passed, str(report)
