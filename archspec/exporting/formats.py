"""The one registry of export formats: everything that lists, checks or loads a format reads it.

Adding a format is one ``FormatEntry``: its name (the ``--format`` value), the backend whose
framework writes and runs it, the runtime that verification runs it in, where its ``Format``
object lives (imported on first use), and its verification bounds.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from archspec import backend as backend_registry
from archspec.errors import UsageError
from archspec.exporting import Format

# Verification bounds: the largest relative difference (max |artifact - expected| / max |expected|,
# per output) an exported file may show against the numpy reference and every backend.
# README "Exporting" states them; LiteRT's were measured with `make export-report`.
EXACT_BOUNDS = {"float32": 1e-5, "float64": 1e-10}
LITERT_BOUNDS = {"float32": 1e-4}


@dataclass(frozen=True)
class FormatEntry:
    name: str
    backend: str  # the registry backend whose framework writes and runs it ("torch", "tensorflow", "jax")
    runtime: str  # what verification runs the file in, as the table names it
    suffix: str  # the file's usual suffix ("" for a folder)
    module: str  # the module defining the Format object
    attribute: str  # its name in ``module``, or the key of that module's FORMATS mapping
    bounds: dict[str, float]  # dtype -> relative bound; a dtype missing here cannot be exported

    def load(self) -> Format:
        """The Format object; imports the backend's framework (a clear error if it is missing)."""
        backend_registry.load_backend(self.backend)
        module = importlib.import_module(self.module)
        formats = getattr(module, "FORMATS", None)
        if isinstance(formats, dict) and self.attribute in formats:
            return formats[self.attribute]
        return getattr(module, self.attribute)


FORMATS: dict[str, FormatEntry] = {
    entry.name: entry
    for entry in (
        FormatEntry("onnx", "torch", "onnxruntime", ".onnx", "archspec.backends.torch.export", "onnx", EXACT_BOUNDS),
        FormatEntry(
            "torch_export",
            "torch",
            "torch.export.load",
            ".pt2",
            "archspec.backends.torch.export",
            "torch_export",
            EXACT_BOUNDS,
        ),
        FormatEntry(
            "saved_model",
            "tensorflow",
            "tf.saved_model.load",
            "",
            "archspec.backends.tensorflow.export",
            "saved_model",
            EXACT_BOUNDS,
        ),
        FormatEntry(
            "litert",
            "tensorflow",
            "ai_edge_litert",
            ".tflite",
            "archspec.backends.tensorflow.export",
            "litert",
            LITERT_BOUNDS,
        ),
        FormatEntry(
            "jax_export",
            "jax",
            "jax.export.deserialize",
            ".jaxexport",
            "archspec.backends.jax.export",
            "jax_export",
            EXACT_BOUNDS,
        ),
        # Readable code (archspec/exporting/code/): the file and its weights beside it, run by
        # importing the file; the same bounds as the other formats of their framework.
        FormatEntry(
            "torch_code",
            "torch",
            "torch (generated nn.Module)",
            ".py",
            "archspec.exporting.code",
            "torch_code",
            EXACT_BOUNDS,
        ),
        FormatEntry(
            "keras_code",
            "tensorflow",
            "keras (generated functional model)",
            ".py",
            "archspec.exporting.code",
            "keras_code",
            EXACT_BOUNDS,
        ),
    )
}


def format_entry(name: str) -> FormatEntry:
    """The entry of format ``name``; a ``UsageError`` listing the formats if it is unknown."""
    if name not in FORMATS:
        close = difflib.get_close_matches(name, list(FORMATS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown export format: expected one of {', '.join(FORMATS)}, received '{name}'{hint}")
    return FORMATS[name]
