"""The export format JAX writes: ``jax_export``, a serialised ``jax.export`` program.

The backend's own model in inference mode, traced with ``jax.export`` on a symbolic batch
dimension (the file runs on any batch size) with the weights as constants, serialised to
StableHLO with ``Exported.serialize()`` and run with ``jax.export.deserialize(...).call``. The
file is a zip archive of two members: ``exported.bin`` (the serialised program) and
``archspec.json`` (the metadata; ``jax.export`` has no place of its own for it). A float64
program is written and run inside ``jax.enable_x64(True)``, as every float64 computation of
this backend; integer inputs (embedding ids) are int32, as the backend's model reads them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from archspec.errors import CheckpointError
from archspec.exporting import ExportMetadata, Runner
from archspec.graph import resolve
from archspec.spec import Spec

from .model import apply, build, precision

PROGRAM_FILE = "exported.bin"
METADATA_FILE = "archspec.json"


class JaxExportFormat:
    """``.jaxexport``: a zip of the serialised ``jax.export`` program and the archspec metadata."""

    name = "jax_export"
    framework = "jax"
    suffix = ".jaxexport"

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        model = build(resolve(spec), weights, dtype=dtype, device="cpu")
        names = tuple(model.graph.outputs)
        input_names = tuple(spec.inputs)
        with model.precision():
            states = model.states()

            def serve(*inputs: jax.Array) -> tuple[jax.Array, ...]:
                values, _ = apply(model.graphdef, states, dict(zip(input_names, inputs)), names, training=False)
                return tuple(values[name] for name in names)

            (batch,) = jax.export.symbolic_shape("batch")
            arguments = [
                jax.ShapeDtypeStruct((batch, *item.shape), model.jax_dtype if item.dtype == "float" else jnp.int32)
                for item in spec.inputs.values()
            ]
            exported = jax.export.export(jax.jit(serve))(*arguments)
            program = bytes(exported.serialize())
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(METADATA_FILE, metadata.to_json())
            archive.writestr(PROGRAM_FILE, program)

    def load(self, out: Path, dtype: str) -> Runner:
        metadata = read_jax_export_metadata(out)
        with zipfile.ZipFile(out) as archive:
            program = archive.read(PROGRAM_FILE)
        with precision(dtype):
            exported = jax.export.deserialize(bytearray(program))
        input_names, output_names = list(metadata.inputs), metadata.outputs

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            with precision(dtype):
                arrays = [
                    np.ascontiguousarray(inputs[name], dtype=aval.dtype)
                    for name, aval in zip(input_names, exported.in_avals)
                ]
                results: Any = exported.call(*arrays)
                return {name: np.asarray(value) for name, value in zip(output_names, results)}

        return run


def read_jax_export_metadata(path: Path) -> ExportMetadata:
    """The archspec metadata of a ``.jaxexport`` file written here."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(METADATA_FILE).decode()
    except (zipfile.BadZipFile, KeyError) as error:
        raise CheckpointError(
            f"{path}: expected a jax_export archive holding {METADATA_FILE}, received {error}"
        ) from None
    return ExportMetadata.from_json(text)


FORMATS: Mapping[str, Any] = {"jax_export": JaxExportFormat()}
