"""Weights files: canonical weights in safetensors, with the spec's hash; atomic writes.

No pickle: safetensors stores raw arrays and a JSON header only, and every file is written
so that a crash leaves the old file or the new one, never half of one. Training checkpoints
(``archspec.training.checkpoints``) store their arrays in the same format.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from archspec.errors import CheckpointError
from archspec.version import __version__

WEIGHTS_FORMAT = "archspec-weights"
"""The ``format`` entry of a weights file's metadata."""


def spec_hash(spec) -> str:
    """SHA-256 of the spec's architecture (inputs, layers, outputs), not its training setup."""
    body = spec.model_dump(mode="json", include={"inputs", "layers", "outputs"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


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
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is still atomic
    finally:
        os.close(descriptor)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def serialize_safetensors(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors encoding of ``arrays``, byte for byte the same for the same input.

    (The safetensors library writes its metadata in a per-process random order.) Layout: an
    8-byte little-endian header length, a JSON header padded with spaces to a multiple of 8,
    then the arrays' little-endian bytes in name order. Read back with the safetensors library.
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        code = _SAFETENSORS_DTYPES.get(array.dtype.name)
        if code is None:
            raise CheckpointError(f"cannot store '{name}' of dtype {array.dtype} in a safetensors file")
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def weights_metadata(spec_name: str, hash_of_spec: str, backend: str, version: str = __version__) -> dict[str, str]:
    """The metadata of a weights file: what wrote it, for which architecture."""
    return {
        "format": WEIGHTS_FORMAT,
        "archspec_version": version,
        "spec_name": spec_name,
        "spec_hash": hash_of_spec,
        "saved_by_backend": backend,
    }


def save_weights(weights: dict[str, np.ndarray], path, spec, backend: str) -> None:
    """Write canonical weights to a safetensors file, atomically (the same weights give the same bytes)."""
    metadata = weights_metadata(spec.name, spec_hash(spec), backend)
    atomic_write_bytes(path, serialize_safetensors(weights, metadata))


def read_weights(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors weights file: (arrays, metadata). Refuses anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (a safe_open handle is no dict)
    except Exception as error:  # noqa: BLE001 (safetensors raises several types for corrupt headers)
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(
            f"{path}: expected an archspec weights file (metadata format '{WEIGHTS_FORMAT}'), "
            f"received {metadata.get('format')!r}"
        )
    return arrays, metadata


def check_weights(expected: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray], source: str) -> None:
    """Refuse weights whose names or shapes differ from ``expected``, naming the first mismatch."""
    for name, shape in expected.items():
        if name not in weights:
            raise CheckpointError(f"{source}: parameter '{name}' is missing (expected shape {list(shape)})")
        if tuple(weights[name].shape) != tuple(shape):
            raise CheckpointError(
                f"{source}: expected parameter '{name}' of shape {list(shape)}, received {list(weights[name].shape)}"
            )
    extra = [name for name in weights if name not in expected]
    if extra:
        raise CheckpointError(f"{source}: parameter '{extra[0]}' does not belong to this model")
