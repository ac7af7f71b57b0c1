"""The export formats torch writes: ``onnx`` (the ``torch.onnx`` dynamo exporter, run with ONNX
Runtime) and ``torch_export`` (a ``torch.export`` program saved as ``.pt2``).

Both trace the backend's own ``GraphModule`` (inference mode) on a batch of two samples with the
batch dimension marked dynamic, so the files run on any batch size. The registry
(``archspec.exporting.formats``) names these objects; ``archspec.exporting`` writes to a temporary
path, verifies, then moves the file into place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from archspec.errors import CheckpointError
from archspec.exporting import ExportMetadata, Runner
from archspec.graph import resolve
from archspec.spec import Spec

from .model import GraphModule, build

METADATA_KEY = "archspec"  # ONNX metadata_props key, and (as archspec.json) the .pt2 extra file
PT2_EXTRA_FILE = "archspec.json"
TRACED_BATCH = 2  # torch.export specialises batch sizes 0 and 1; any other size is traced as symbolic


def _module(spec: Spec, weights: Mapping[str, np.ndarray], dtype: str) -> GraphModule:
    module = build(resolve(spec), weights, dtype=dtype, device="cpu").native
    module.eval()
    return module


def _examples(spec: Spec, dtype: str) -> tuple[torch.Tensor, ...]:
    """A batch of TRACED_BATCH samples per input: floats of the model's dtype, ids of 1 (valid in any table)."""
    floats = torch.float32 if dtype == "float32" else torch.float64
    return tuple(
        torch.zeros((TRACED_BATCH, *model_input.shape), dtype=floats)
        if model_input.dtype == "float"
        else torch.ones((TRACED_BATCH, *model_input.shape), dtype=getattr(torch, model_input.dtype))
        for model_input in spec.inputs.values()
    )


def _dynamic_batch(spec: Spec) -> tuple[tuple[dict[int, torch.export.Dim], ...]]:
    """``GraphModule.forward(*inputs)``: one varargs parameter, a tuple with a dynamic dim 0 per input."""
    batch = torch.export.Dim("batch", min=1)
    return (tuple({0: batch} for _ in spec.inputs),)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The ONNX exporter logs a warning per torchvision operator it cannot find; none is used here."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.onnx._internal.exporter._registration")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class OnnxFormat:
    """``.onnx`` through ``torch.onnx.export(..., dynamo=True)``; metadata in ``metadata_props``."""

    name = "onnx"
    framework = "torch"
    suffix = ".onnx"

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        module = _module(spec, weights, dtype)
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                module,
                _examples(spec, dtype),
                dynamo=True,
                dynamic_shapes=_dynamic_batch(spec),
                input_names=list(spec.inputs),
                output_names=list(module.output_names),
                optimize=True,
                verbose=False,
            )
        assert program is not None  # dynamo=True always returns the program
        program.model.metadata_props[METADATA_KEY] = metadata.to_json()
        program.save(str(out))

    def load(self, out: Path, dtype: str) -> Runner:
        import onnxruntime  # the runtime, only when a file is run

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        kinds = {item.name: item.type for item in session.get_inputs()}

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            feeds = {name: np.ascontiguousarray(inputs[name], dtype=_numpy_type(kinds[name])) for name in kinds}
            return dict(zip(names, session.run(names, feeds)))

        return run


def _numpy_type(onnx_type: str) -> str:
    """ONNX Runtime's type string ``tensor(float)`` -> the numpy dtype name."""
    inner = onnx_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64"}.get(inner, inner)


def read_onnx_metadata(path: Path) -> ExportMetadata:
    """The archspec metadata of an ``.onnx`` file written here."""
    import onnx

    props = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
    if METADATA_KEY not in props:
        raise CheckpointError(f"{path}: expected archspec metadata in metadata_props, received keys {sorted(props)}")
    return ExportMetadata.from_json(props[METADATA_KEY])


class TorchExportFormat:
    """``.pt2`` through ``torch.export.export`` and ``torch.export.save``; metadata as the extra file
    ``archspec.json``."""

    name = "torch_export"
    framework = "torch"
    suffix = ".pt2"

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        module = _module(spec, weights, dtype)
        with torch.no_grad():
            program = torch.export.export(module, _examples(spec, dtype), dynamic_shapes=_dynamic_batch(spec))
        torch.export.save(program, str(out), extra_files={PT2_EXTRA_FILE: metadata.to_json()})

    def load(self, out: Path, dtype: str) -> Runner:
        extra = {PT2_EXTRA_FILE: ""}
        module = torch.export.load(str(out), extra_files=extra).module()
        meta = ExportMetadata.from_json(extra[PT2_EXTRA_FILE])
        input_names, output_names = list(meta.inputs), meta.outputs
        dtypes = {name: kind for name, (_, kind) in meta.inputs.items()}

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            tensors = [torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=dtypes[name])) for name in input_names]
            with torch.no_grad():
                result = module(*tensors)
            values = result if isinstance(result, (tuple, list)) else (result,)
            return {name: value.numpy() for name, value in zip(output_names, values)}

        return run


FORMATS = {fmt.name: fmt for fmt in (OnnxFormat(), TorchExportFormat())}
