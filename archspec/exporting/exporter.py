"""``export``: write a trained model in a format other tools run, verify it, then move it into place.

The file is written to a temporary path beside ``out``; verification runs that file; only a file
that passes (or, with ``verify=False``, any file the exporter wrote) is moved to ``out``. A failed
export leaves nothing behind, and an older file at ``out`` untouched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archspec.api import compile as compile_spec
from archspec.api import load_with_graph
from archspec.data.files import PREPROCESSING_FILE, read_preprocessing
from archspec.errors import ArchSpecError, CheckpointError, UsageError
from archspec.exporting import ExportMetadata, Format
from archspec.exporting.formats import FormatEntry, format_entry
from archspec.exporting.verification import Verification, expected_outputs, verification_inputs, verify
from archspec.graph import ModelGraph
from archspec.model import CompiledModel
from archspec.version import __version__
from archspec.weights import check_weights, read_weights, spec_hash

VERIFY_SAMPLES = 64  # the batch verification runs (the files are traced with a batch of 2)


class ExportError(ArchSpecError):
    """An export failed: the exporter refused the model, or the file failed verification (then
    ``verification`` holds the table). Nothing was written."""

    def __init__(self, message: str, verification: Verification | None = None):
        super().__init__(message)
        self.verification = verification


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    runtime: str
    backend: str  # the backend the weights were taken from
    dtype: str
    metadata: ExportMetadata
    verification: Verification | None  # None: written with verify=False, unchecked


def export(
    model_or_spec,
    weights=None,
    *,
    format: str,
    out,
    backend: str | None = None,
    dtype: str | None = None,
    verify: bool = True,
    data_dir=None,
    samples: int = VERIFY_SAMPLES,
) -> ExportResult:
    """Export ``model_or_spec`` (a compiled model, or a spec with ``weights``: a weights file or a
    canonical dict) as ``format`` at ``out``; verified unless ``verify=False``.

    ``backend``: the backend whose model the weights are read through (a compiled model's own);
    a format of the other framework is built from the canonical weights. ``dtype`` defaults to
    the model's (a weights file's). Raises ``ExportError`` when the file fails verification
    (nothing is written), ``UsageError`` / ``CheckpointError`` for bad arguments or weights.
    """
    entry = format_entry(format)
    graph, arrays, backend, dtype, class_names = _source(model_or_spec, weights, backend, dtype)
    if dtype not in entry.bounds:
        raise UsageError(f"{entry.name}: expected dtype {' or '.join(entry.bounds)}, received {dtype}")
    if samples < 1:
        raise UsageError(f"expected a positive number of verification samples, received {samples}")
    if isinstance(model_or_spec, CompiledModel):
        canonical = arrays  # already read out of the source backend's model
    else:  # the weights as the source backend holds them, back in the canonical layout
        canonical = compile_spec(graph.spec, backend=backend, dtype=dtype, device="cpu", weights=arrays).get_weights()
    metadata = _metadata(graph, dtype, entry, backend, class_names)
    out = Path(out)
    fmt = entry.load()
    # Beside out (so the move is a rename), hidden, with out's suffix (torch.export.load wants .pt2).
    partial = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    # Files a format writes beside its file (a code export's weights), moved and removed with it.
    companions: Callable[[Path], list[Path]] = getattr(fmt, "companions", lambda path: [])
    out.parent.mkdir(parents=True, exist_ok=True)
    for path in (partial, *companions(partial)):
        _remove(path)
    try:
        try:
            fmt.write(graph.spec, canonical, partial, dtype, metadata)
        except ArchSpecError:
            raise
        except Exception as error:  # the framework's exporter refused the model: one line, nothing written
            raise ExportError(f"{out}: the {entry.name} exporter failed: {_first_line(error)}") from error
        verification = None
        if verify:
            inputs, source = verification_inputs(graph, dtype, samples, data_dir)
            expected = expected_outputs(graph, canonical, inputs, dtype)
            verification = _verify(entry, fmt, partial, graph, inputs, expected, dtype, source, out)
        for written, final in zip((partial, *companions(partial)), (out, *companions(out))):
            _remove(final)
            os.replace(written, final)
    finally:
        for path in (partial, *companions(partial)):
            _remove(path)
    return ExportResult(out, entry.name, entry.runtime, backend, dtype, metadata, verification)


def _verify(
    entry: FormatEntry, fmt: Format, partial: Path, graph, inputs, expected, dtype, source, out
) -> Verification:
    try:
        runner = fmt.load(partial, dtype)
        verification = verify(runner, graph, inputs, expected, entry.bounds[dtype], source)
    except ArchSpecError:
        raise
    except Exception as error:  # the runtime refused the file
        raise ExportError(
            f"{out}: the {entry.name} file does not run in {entry.runtime}: {_first_line(error)}"
        ) from error
    failure = verification.first_failure()
    if failure is not None:
        detail = failure.problem or (
            f"max relative difference {failure.max_rel:.2e} > bound {failure.bound:.0e} "
            f"(max absolute {failure.max_abs:.2e})"
        )
        raise ExportError(
            f"{out}: verification failed, nothing written: output '{failure.output}' of the {entry.name} file "
            f"({entry.runtime}) differs from the {failure.against}: {detail}",
            verification,
        )
    return verification


def _source(model_or_spec, weights, backend, dtype) -> tuple[ModelGraph, dict[str, np.ndarray], str, str, list | None]:
    """(graph, canonical weights, source backend, dtype, class names) of what is exported."""
    if isinstance(model_or_spec, CompiledModel):
        if weights is not None:
            raise UsageError("expected weights only with a spec, received a compiled model and weights")
        if backend not in (None, model_or_spec.backend):
            raise UsageError(f"expected backend {model_or_spec.backend!r} (the model's), received {backend!r}")
        return (
            model_or_spec.graph,
            model_or_spec.get_weights(),
            model_or_spec.backend,
            dtype or model_or_spec.dtype,
            None,
        )
    spec, graph = load_with_graph(model_or_spec)
    class_names = None
    if weights is None:
        raise UsageError("expected weights (a weights.safetensors file or a dict of arrays) with a spec, received none")
    if isinstance(weights, Mapping):
        arrays = {name: np.asarray(value) for name, value in weights.items()}
        source = "weights"
    else:
        path = Path(weights)
        arrays, saved = read_weights(path)
        if saved.get("spec_hash") not in (None, spec_hash(spec)):
            raise CheckpointError(
                f"{path}: saved from spec '{saved.get('spec_name')}' whose architecture differs from "
                f"'{spec.name}' (spec hash mismatch)"
            )
        source = str(path)
        if (path.parent / PREPROCESSING_FILE).is_file():
            class_names = read_preprocessing(path.parent / PREPROCESSING_FILE).get("class_names")
    check_weights({name: p.shape for name, p in graph.parameters.items()}, arrays, source)
    if dtype is None:
        dtype = "float64" if {str(a.dtype) for a in arrays.values()} == {"float64"} else "float32"
    return graph, arrays, backend or "torch", dtype, class_names


def _metadata(graph: ModelGraph, dtype: str, entry: FormatEntry, backend: str, class_names) -> ExportMetadata:
    spec = graph.spec
    inputs = {
        name: ((None, *item.shape), dtype if item.dtype == "float" else item.dtype)
        for name, item in spec.inputs.items()
    }
    extra = {"spec_name": spec.name, "format": entry.name, "dtype": dtype, "weights_from": backend}
    classes = [str(name) for name in class_names] if class_names else None
    return ExportMetadata(spec_hash(spec), __version__, inputs, list(graph.outputs), classes, extra)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
