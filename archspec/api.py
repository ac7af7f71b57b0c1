"""The user-facing entry points: load a spec, compile it, load weights into it."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from archspec import backend as backend_registry
from archspec.errors import CheckpointError, Problem, SpecError, UsageError
from archspec.graph import GraphProblems, ModelGraph, resolve
from archspec.initializers import canonical_weights
from archspec.spec.diagnostics import problems_from_validation_error
from archspec.spec.document import Spec
from archspec.spec.files import FileData, with_paths_from
from archspec.spec.source import parse_yaml
from archspec.weights import check_weights, read_weights, spec_hash


def _read(source) -> tuple[str | bytes, str]:
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml", ".json"))
    ):
        path = Path(source)
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise SpecError(Problem("no such file", str(path))) from None
        except (IsADirectoryError, PermissionError) as error:
            raise SpecError(Problem(f"cannot read the file ({error.strerror})", str(path))) from None
    if isinstance(source, (str, bytes)):
        return source, "<spec>"
    if isinstance(source, dict):
        return yaml.safe_dump(source, sort_keys=False), "<spec>"
    raise UsageError(f"expected a Spec, a path or YAML text, received {type(source).__name__}")


def load_with_graph(source) -> tuple[Spec, ModelGraph]:
    """Parse, validate and resolve a spec; every problem is reported at once, located."""
    if isinstance(source, Spec):
        return source, _resolve_unlocated(source)
    text, filename = _read(source)
    document = parse_yaml(text, filename)
    try:
        spec = Spec.model_validate(document.data)
    except ValidationError as error:
        raise SpecError(problems_from_validation_error(error, document, Spec)) from None
    if filename != "<spec>" and isinstance(spec.data, FileData):  # data files are relative to the spec file
        spec = spec.model_copy(update={"data": with_paths_from(spec.data, Path(filename).resolve().parent)})
    try:
        graph = resolve(spec)
    except GraphProblems as error:
        problems = []
        for loc, message in error.problems:
            line, column = document.locate(loc)
            problems.append(Problem(message, filename, line, column))
        raise SpecError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0))) from None
    return spec, graph


def _resolve_unlocated(spec: Spec) -> ModelGraph:
    try:
        return resolve(spec)
    except GraphProblems as error:
        raise SpecError([Problem(f"{_dotted(loc)}: {message}") for loc, message in error.problems]) from None


def _dotted(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(source: str | os.PathLike | bytes | Spec) -> Spec:
    """Load and validate a spec from a YAML file path, YAML text or bytes, or a plain dict.

    Raises ``SpecError`` listing every problem as ``FILE:LINE:COL: message``.
    """
    return load_with_graph(source)[0]


def graph_of(spec) -> ModelGraph:
    return load_with_graph(spec)[1]


def compile(
    spec,
    backend: str = "torch",
    dtype: str | None = None,
    *,
    seed: int | None = None,
    device: str | None = None,
    weights=None,
):
    """Build ``spec`` with ``backend`` from archspec's canonical initial weights.

    ``dtype`` defaults to the spec's training dtype (float32 without training);
    ``seed`` to the spec's training seed; ``weights`` (canonical dict) replaces the
    initial weights. Returns a ``CompiledModel`` whose ``.native`` is the
    framework's own model.
    """
    spec, graph = load_with_graph(spec)
    training = spec.training
    dtype = dtype or (training.dtype if training else "float32")
    if dtype not in ("float32", "float64"):
        raise UsageError(f"expected dtype float32 or float64, received {dtype!r}")
    device = device or (training.device if training else "auto")
    # Through the module: a test replaces load_backend to prove nothing loads before the memory check.
    module = backend_registry.load_backend(backend)
    initial = canonical_weights(graph, seed=seed, dtype=dtype)
    model = module.build(graph, initial, dtype=dtype, device=device)
    if weights is not None:
        model.set_weights(weights)
    return model


def load_weights(model, path) -> None:
    """Load a safetensors weights file (from either backend) into ``model``.

    Refuses a file saved from a different architecture, naming the first mismatch.
    """
    arrays, metadata = read_weights(path)
    expected = {name: p.shape for name, p in model.graph.parameters.items()}
    check_weights(expected, arrays, str(path))
    if metadata.get("spec_hash") not in (None, spec_hash(model.spec)):
        raise CheckpointError(
            f"{path}: saved from spec '{metadata.get('spec_name')}' whose architecture differs from "
            f"'{model.spec.name}' (spec hash mismatch)"
        )
    model.set_weights(arrays)
