"""The export formats JAX writes: none yet (``archspec.contract.Export``).

A JAX-trained model exports through the other backends: its canonical weights load bit for bit
into the torch and TensorFlow backends (``archspec.load_weights``), which write ONNX,
``torch.export``, SavedModel, LiteRT and readable code (``archspec export SPEC --weights ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMATS: Mapping[str, Any] = {}
