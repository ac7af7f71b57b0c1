"""Export a model to files other tools run (``archspec.export(...)``, ``archspec export``): ONNX,
torch.export, SavedModel, LiteRT, plain code.

Every format is one ``FormatEntry`` in ``archspec.exporting.formats.FORMATS``, naming the
``Format`` object that writes and loads it (``backends/<name>/export.py`` for the framework
formats). ``exporter.export`` writes the artifact to a temporary path, then *verifies* it
(``verification``): runs it in its own runtime on a batch of inputs, compares it with the numpy
reference and with every backend, and moves it into place only when every bound holds.
``command`` is ``archspec export``. Imports no framework: each format imports its own on use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # annotations only
    from archspec.spec import Spec


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported file carries where its format allows: the spec's hash, archspec's
    version, the inputs' names, shapes (batch dimension None) and dtypes, the class names."""

    spec_hash: str
    archspec_version: str
    inputs: dict[str, tuple[tuple[int | None, ...], str]]
    outputs: list[str]
    class_names: list[str] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The metadata as the JSON text the files carry (input shapes with ``null`` for the batch)."""
        body = {
            "spec_hash": self.spec_hash,
            "archspec_version": self.archspec_version,
            "inputs": {name: {"shape": list(shape), "dtype": kind} for name, (shape, kind) in self.inputs.items()},
            "outputs": list(self.outputs),
            "class_names": self.class_names,
            **self.extra,
        }
        return json.dumps(body)  # in order: the inputs as the model takes them

    @classmethod
    def from_json(cls, text: str) -> ExportMetadata:
        """The metadata ``to_json`` wrote."""
        body = json.loads(text)
        known = ("spec_hash", "archspec_version", "inputs", "outputs", "class_names")
        return cls(
            body["spec_hash"],
            body["archspec_version"],
            {name: (tuple(item["shape"]), item["dtype"]) for name, item in body["inputs"].items()},
            list(body["outputs"]),
            body.get("class_names"),
            {key: value for key, value in body.items() if key not in known},
        )


class Runner(Protocol):
    """An exported artifact loaded in its own runtime."""

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the artifact on channels-last ``inputs`` (spec input name -> array, any batch
        size); return spec output name -> array."""
        ...


class Format(Protocol):
    """One export format."""

    name: str  # the --format value: "onnx", "torch_export", "saved_model", "litert", "torch_code", ...
    framework: str  # the registry backend whose framework writes it ("torch" or "tensorflow")
    suffix: str  # the default file suffix (".onnx", ".pt2", "" for a folder, ".py")

    def write(
        self,
        spec: Spec,
        weights: Mapping[str, np.ndarray],
        out: Path,
        dtype: str,
        metadata: ExportMetadata,
    ) -> None:
        """Write the artifact for ``spec`` with canonical ``weights`` at ``out`` (nothing else)."""
        ...

    def load(self, out: Path, dtype: str) -> Runner:
        """Load the artifact written at ``out`` in its own runtime."""
        ...

    # Optional: ``companions(out) -> list[Path]``, files a format writes beside ``out`` (a code
    # export's weights); the exporter moves them into place with ``out`` and removes them with it.
