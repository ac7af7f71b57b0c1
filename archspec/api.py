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
from archspec.spec.blocks import BlockProblems, expand_blocks
from archspec.spec.diagnostics import problems_from_validation_error
from archspec.spec.document import Spec
from archspec.spec.files import FileData, with_paths_from
from archspec.spec.source import SourceDocument, parse_yaml
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
    spec, graph, _ = _load_document(text, filename)
    return spec, graph


def expand(source: str | os.PathLike | bytes) -> dict:
    """The spec with its blocks expanded: the flat document (plain data, as written, no
    defaults added) that validation reads. Raises ``SpecError`` for an invalid spec."""
    text, filename = _read(source)
    return _load_document(text, filename)[2].data


def _load_document(text: str | bytes, filename: str) -> tuple[Spec, ModelGraph, SourceDocument]:
    document = parse_yaml(text, filename)
    block_problems: list[Problem] = []
    try:
        document = expand_blocks(document)
    except BlockProblems as error:  # validate the rest anyway: every mistake in one report
        document, block_problems = error.document, error.problems
    try:
        spec = Spec.model_validate(document.data)
    except ValidationError as error:
        problems = problems_from_validation_error(error, document, Spec)
        if block_problems:  # layers left out by a broken block use make no mistake of their own
            problems = [p for p in problems if not p.message.startswith("layers: ")]
        raise SpecError(_by_position(block_problems + problems)) from None
    if block_problems:
        raise SpecError(block_problems)
    if filename != "<spec>" and isinstance(spec.data, FileData):  # data files are relative to the spec file
        spec = spec.model_copy(update={"data": with_paths_from(spec.data, Path(filename).resolve().parent)})
    try:
        graph = resolve(spec)
    except GraphProblems as error:
        raise SpecError(_by_position([document.problem(message, loc) for loc, message in error.problems])) from None
    return spec, graph, document


def _by_position(problems: list[Problem]) -> list[Problem]:
    """Problems in reading order, each once (the copies of a repeated block repeat its mistakes)."""
    return sorted(dict.fromkeys(problems), key=lambda p: (p.line or 0, p.column or 0))


def load_document(text: str | bytes, filename: str = "<spec>") -> SourceDocument:
    """Parse a spec's YAML and expand its blocks: the document that validation reads."""
    return expand_blocks(parse_yaml(text, filename))


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
