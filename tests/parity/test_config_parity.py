"""Same weights, same function, for every config of ``configs/``: every registered backend against
the numpy reference and the first backend (outputs, gradients, batch-norm statistics; the
checks of test_model_parity.py), and bit-identical initial weights on every backend."""

from pathlib import Path

import numpy as np
import pytest

import archspec
from archspec.api import load_with_graph
from archspec.backend import BACKENDS
from archspec.initializers import canonical_weights
from parity.test_model_parity import check

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config(config, dtype):
    check(config, dtype, batch=3)


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_initial_weights_are_bit_identical(config):
    spec, graph = load_with_graph(config)
    models = {name: archspec.compile(spec, backend=name, dtype="float64") for name in BACKENDS}
    expected = canonical_weights(graph)
    for name, model in models.items():
        weights = model.get_weights()
        assert list(weights) == list(expected), name
        for key, value in expected.items():
            assert np.array_equal(weights[key], value), f"{name}: {key} differs from the canonical initial value"
        assert model.native_param_count() == graph.param_count == model.param_count
