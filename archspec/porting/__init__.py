"""Import existing Keras models and PyTorch modules into a spec and canonical weights, and
prove the port computes the same (``proof``).

The framework side of an import lives in the backend (``backends/tensorflow/porting.py``
reads a Keras model, ``backends/torch/porting.py`` traces a ``torch.nn.Module``); each gives
an ``Imported``: the spec document, the canonical weights, and the original model wrapped as
an ``Original`` that the proof runs beside the spec compiled on every backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from archspec import backend as backend_registry
from archspec.errors import UsageError


class Original(Protocol):
    """The model that was imported, run in its own framework."""

    framework: str  # "keras" or "torch"

    def outputs(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        """The original model's outputs (spec output name -> array) on channels-last spec
        ``inputs``, computed in ``dtype`` ("float32" or "float64": the original cast to it).
        Converts the inputs to the original's own layout (NCHW for a torch CNN)."""
        ...

    def intermediates(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        """The output of each spec node that has a counterpart in the original (spec node name
        -> array, channels-last like the spec's), for locating the first layer that differs."""
        ...


@dataclass
class Imported:
    """An import's result: ``document`` (the spec as a YAML-ready dict), ``weights`` (canonical
    layout, spec node/weight names -> arrays), ``original``, and ``notes`` for the report
    (conversions made, defaults the user should review)."""

    document: dict[str, Any]
    weights: dict[str, np.ndarray]
    original: Original
    notes: list[str] = field(default_factory=list)


def _porting_module(backend: str) -> ModuleType:
    """The backend's ``porting`` module, imported on first use (it imports the framework)."""
    package = backend_registry.load_backend(backend)
    try:
        return importlib.import_module(f"{package.__name__}.porting")
    except ModuleNotFoundError as error:
        if error.name != f"{package.__name__}.porting":
            raise
        raise UsageError(
            f"expected the {backend} backend to import models, received a backend without a porting module"
        ) from None


def import_keras(model) -> Imported:
    """Import a built Sequential or functional Keras 3 model (``backends/tensorflow/porting.py``).

    Raises ``UnsupportedModelError`` listing every layer archspec cannot express."""
    return _porting_module("tensorflow").from_keras(model)


def torch_importer():
    """``from_torch(module, example_input) -> Imported`` of ``backends/torch/porting.py``; a
    ``UsageError`` when the torch backend cannot import modules (checked before a user's code runs)."""
    porting = _porting_module("torch")
    if not hasattr(porting, "from_torch"):
        raise UsageError("expected the torch backend to import modules (from_torch), received a backend without it")
    return porting.from_torch


def import_torch(module, example_input) -> Imported:
    """Import a ``torch.nn.Module`` traced on ``example_input`` (``backends/torch/porting.py``)."""
    return torch_importer()(module, example_input)
