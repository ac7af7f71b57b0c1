"""Import existing Keras models and PyTorch modules into a spec and canonical weights, and
prove the port computes the same (``proof``).

The framework side of an import lives in the backend (``backends/tensorflow/porting.py``
reads a Keras model, ``backends/torch/porting.py`` traces a ``torch.nn.Module``); each gives
an ``Imported``: the spec document, the canonical weights, and the original model wrapped as
an ``Original`` that the proof runs beside the spec compiled on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


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
