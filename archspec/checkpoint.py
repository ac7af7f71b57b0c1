"""Weights files: safetensors in the canonical layout, with the spec's hash.

No pickle: safetensors stores raw arrays and a JSON header only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from archspec.errors import CheckpointError


def spec_hash(spec) -> str:
    """SHA-256 of the spec's architecture (inputs, layers, outputs), not its training setup."""
    body = spec.model_dump(mode="json", include={"inputs", "layers", "outputs"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _version() -> str:
    from archspec import __version__

    return __version__


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; a finished file gets the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def save_weights(weights: dict[str, np.ndarray], path, spec, backend: str) -> None:
    """Write canonical weights to a safetensors file, atomically."""
    from safetensors.numpy import save

    metadata = {
        "format": "archspec-weights",
        "archspec_version": _version(),
        "spec_name": spec.name,
        "spec_hash": spec_hash(spec),
        "saved_by_backend": backend,
    }
    arrays = {name: np.ascontiguousarray(value) for name, value in weights.items()}
    atomic_write_bytes(path, save(arrays, metadata=metadata))


def read_weights(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors weights file: (arrays, metadata). Refuses anything malformed."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises several types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != "archspec-weights":
        raise CheckpointError(f"{path}: expected an archspec weights file (metadata format 'archspec-weights'), received {metadata.get('format')!r}")
    return arrays, metadata


def check_weights(expected: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray], source: str) -> None:
    """Refuse weights whose names or shapes differ from ``expected``, naming the first mismatch."""
    for name, shape in expected.items():
        if name not in weights:
            raise CheckpointError(f"{source}: parameter '{name}' is missing (expected shape {list(shape)})")
        if tuple(weights[name].shape) != tuple(shape):
            raise CheckpointError(
                f"{source}: parameter '{name}' has shape {list(weights[name].shape)}, expected {list(shape)}"
            )
    extra = [name for name in weights if name not in expected]
    if extra:
        raise CheckpointError(f"{source}: parameter '{extra[0]}' does not belong to this model")
