"""Weights files and training checkpoints: safetensors in the canonical layout, JSON state.

No pickle: safetensors stores raw arrays and a JSON header only; every file is written
atomically, and a checkpoint is verified byte for byte (SHA-256) before it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def save_weights(weights: dict[str, np.ndarray], path, spec, backend: str) -> None:
    """Write canonical weights to a safetensors file, atomically (the same weights give the same bytes)."""
    metadata = {
        "format": "archspec-weights",
        "archspec_version": _version(),
        "spec_name": spec.name,
        "spec_hash": spec_hash(spec),
        "saved_by_backend": backend,
    }
    atomic_write_bytes(path, serialize_safetensors(weights, metadata))


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
        raise CheckpointError(
            f"{path}: expected an archspec weights file (metadata format 'archspec-weights'), received {metadata.get('format')!r}"
        )
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


# --- training checkpoints ------------------------------------------------------------
#
# A run folder holds at most one checkpoint, ``DIR/checkpoint/``:
#
#     state.json                      what to resume from, with a SHA-256 of every other file
#     weights.000007.safetensors      canonical weights (an ordinary archspec weights file)
#     optimizer.000007.safetensors    canonical optimizer slots, "{parameter}/{slot}"
#
# A new checkpoint writes new, numbered array files (never a name the current state.json
# refers to), makes them durable, then replaces state.json in one rename, and only then
# deletes the files the old state.json referred to. A process killed at any instant
# therefore leaves the old state.json with its files, or the new one with its files.

CHECKPOINT_FOLDER = "checkpoint"
STATE_FILE = "state.json"
_ARRAY_FILE = re.compile(r"^(weights|optimizer)\.(\d{6,})\.safetensors$")
_TEMPORARY_FILE = re.compile(r"^\.(state\.json|(weights|optimizer)\.\d{6,}\.safetensors)\..+\.tmp$")
_MAX_STATE_BYTES = 1 << 30


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FileEntry(_Strict):
    """One array file of a checkpoint: its name in the checkpoint folder, size and SHA-256."""

    name: str = Field(pattern=_ARRAY_FILE.pattern)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Progress(_Strict):
    """Where training stands. ``epoch`` epochs are complete; ``position`` batches of epoch
    ``epoch`` (0-based) are done; ``step`` optimizer steps in all. The data order is a pure
    function of (seed, epoch) and a dropout mask of (seed, layer, step), so this is the
    whole random state."""

    epoch: int = Field(ge=0)
    position: int = Field(ge=0)
    step: int = Field(ge=0)
    samples_seen: int = Field(ge=0)
    history: list[dict[str, int | float]]
    step_losses: list[float]


class RunSettings(_Strict):
    """Settings of the run that a resume takes over unless told otherwise."""

    epochs: int = Field(ge=1)
    max_steps: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)


class DataFingerprint(_Strict):
    """The training split the run trained on: sample count and SHA-256 of x and y as trained."""

    samples: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CheckpointState(_Strict):
    """The content of ``state.json`` (inside ``{"checkpoint": ..., "sha256": ...}``)."""

    format: Literal["archspec-checkpoint"] = "archspec-checkpoint"
    version: Literal[1] = 1
    archspec_version: str
    spec_name: str
    spec_hash: str
    backend: str
    dtype: Literal["float32", "float64"]
    training: dict[str, Any]
    run: RunSettings
    data: DataFingerprint
    progress: Progress
    files: dict[Literal["weights", "optimizer"], FileEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back and verified byte for byte: its state and its arrays."""

    folder: Path
    state: CheckpointState
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]


def checkpoint_folder(run_folder) -> Path:
    return Path(run_folder) / CHECKPOINT_FOLDER


def fingerprint(x: np.ndarray, y: np.ndarray) -> DataFingerprint:
    """SHA-256 over the shapes, dtypes and bytes of the training arrays."""
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return DataFingerprint(samples=len(x), sha256=digest.hexdigest())


def _canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_checkpoint(
    run_folder, state: CheckpointState, weights: dict[str, np.ndarray], optimizer: dict[str, np.ndarray]
) -> Path:
    """Write a complete checkpoint into ``run_folder/checkpoint`` as one unit (see above).

    ``state.files`` is filled in here. Raises CheckpointError when the folder cannot be
    written (the previous checkpoint then stays as it was).
    """
    folder = checkpoint_folder(run_folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(m.group(2)) for p in folder.iterdir() if (m := _ARRAY_FILE.match(p.name))), default=0)
        payloads = {
            "weights": serialize_safetensors(
                weights,
                {
                    "format": "archspec-weights",
                    "archspec_version": state.archspec_version,
                    "spec_name": state.spec_name,
                    "spec_hash": state.spec_hash,
                    "saved_by_backend": state.backend,
                },
            ),
            "optimizer": serialize_safetensors(
                optimizer, {"format": "archspec-optimizer-state", "spec_hash": state.spec_hash}
            ),
        }
        files = {}
        for role, payload in payloads.items():
            name = f"{role}.{number:06d}.safetensors"
            atomic_write_bytes(folder / name, payload)
            files[role] = FileEntry(name=name, bytes=len(payload), sha256=hashlib.sha256(payload).hexdigest())
        body = state.model_copy(update={"files": files}).model_dump(mode="json")
        document = {"checkpoint": body, "sha256": hashlib.sha256(_canonical_json(body)).hexdigest()}
        atomic_write_bytes(folder / STATE_FILE, (json.dumps(document, indent=1) + "\n").encode())
    except OSError as error:
        raise CheckpointError(
            f"{folder}: cannot write the checkpoint ({error.strerror or error}); "
            f"the last complete checkpoint, if any, is unchanged"
        ) from None
    _remove_stale_files(folder, keep={entry.name for entry in files.values()})
    return folder


def _remove_stale_files(folder: Path, keep: set[str]) -> None:
    """Delete array files no state.json refers to and temporary files of interrupted writes.
    Best effort: a file left behind is harmless, and the next checkpoint tries again."""
    stale = []
    with contextlib.suppress(OSError):
        stale = [
            path
            for path in folder.iterdir()
            if (_ARRAY_FILE.match(path.name) and path.name not in keep) or _TEMPORARY_FILE.match(path.name)
        ]
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def read_checkpoint(run_folder) -> Checkpoint:
    """Read ``run_folder/checkpoint`` and verify every byte against state.json; reads only.

    Raises CheckpointError naming the file and what is wrong with it.
    """
    folder = checkpoint_folder(run_folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{run_folder}: no checkpoint to resume from (expected {path}, which train writes with out=DIR)"
        )
    raw = _read_bounded(path, _MAX_STATE_BYTES)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: not readable JSON ({_one_line(error)})") from None
    if not isinstance(document, dict) or set(document) != {"checkpoint", "sha256"}:
        raise CheckpointError(f"{path}: expected an object with keys 'checkpoint' and 'sha256'")
    body = document["checkpoint"]
    try:
        intact = hashlib.sha256(_canonical_json(body)).hexdigest() == document["sha256"]
    except (TypeError, ValueError):
        intact = False
    if not intact:
        raise CheckpointError(f"{path}: the checkpoint state does not match its SHA-256 (the file is corrupt)")
    try:
        state = CheckpointState.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CheckpointError(f"{path}: invalid checkpoint state at '{where}': {first['msg']}") from None
    arrays = {}
    for role in ("weights", "optimizer"):
        entry = state.files.get(role)
        if entry is None:
            raise CheckpointError(f"{path}: the checkpoint lists no {role} file")
        arrays[role] = _read_arrays(folder / entry.name, entry)
    return Checkpoint(folder, state, arrays["weights"], arrays["optimizer"])


def _read_bounded(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            payload = handle.read(limit + 1)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read the file ({error.strerror or error})") from None
    if len(payload) > limit:
        raise CheckpointError(f"{path}: larger than {limit} bytes; not a checkpoint file")
    return payload


def _read_arrays(path: Path, entry: FileEntry) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    if not path.is_file():
        raise CheckpointError(f"{path}: missing (state.json refers to it)")
    payload = _read_bounded(path, entry.bytes)
    if len(payload) != entry.bytes or hashlib.sha256(payload).hexdigest() != entry.sha256:
        raise CheckpointError(
            f"{path}: expected {entry.bytes} bytes with the SHA-256 in state.json, "
            f"received {len(payload)} bytes that differ (the file is truncated or corrupt)"
        )
    try:
        return load(payload)
    except Exception as error:  # safetensors raises its own error types for malformed headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({_one_line(error)})") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def check_arrays(expected: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray], dtype: str, source: str) -> None:
    """Refuse arrays whose names, shapes or dtype differ from ``expected``, or that hold NaN or infinity."""
    check_weights(expected, arrays, source)
    for name, array in arrays.items():
        if array.dtype != np.dtype(dtype):
            raise CheckpointError(f"{source}: '{name}' is {array.dtype}, expected {dtype}")
        if not np.isfinite(array).all():
            raise CheckpointError(f"{source}: '{name}' holds NaN or infinite values")


# Settings a resumed run may change: they do not alter a single step of training.
_FREE_TRAINING_KEYS = frozenset({"epochs", "device", "metrics"})


def check_resumable(checkpoint: Checkpoint, graph, training) -> None:
    """Refuse a checkpoint of another architecture or training setup, or whose arrays do not fit."""
    from archspec.definitions.optimizers import state_slots

    state, folder = checkpoint.state, checkpoint.folder
    spec = graph.spec
    if state.spec_hash != spec_hash(spec):
        raise CheckpointError(
            f"{folder}: saved from spec '{state.spec_name}' whose architecture differs from "
            f"'{spec.name}' (spec hash mismatch)"
        )
    current = training.model_dump(mode="json")
    for key in sorted(set(current) | set(state.training)):
        if key not in _FREE_TRAINING_KEYS and current.get(key) != state.training.get(key):
            raise CheckpointError(
                f"{folder}: the checkpoint was trained with {key} = {state.training.get(key)!r}, "
                f"this run has {current.get(key)!r}; resume with the same training settings"
            )
    parameters = graph.parameters
    check_arrays(
        {name: p.shape for name, p in parameters.items()},
        checkpoint.weights,
        state.dtype,
        str(folder / state.files["weights"].name),
    )
    options = {
        "lr": training.optimizer.learning_rate,
        **training.optimizer.model_dump(exclude={"type", "learning_rate"}),
    }
    slots = state_slots(training.optimizer.type, options)
    expected = {f"{name}/{slot}": p.shape for name, p in parameters.items() if p.trainable for slot in slots}
    check_arrays(expected, checkpoint.optimizer, state.dtype, str(folder / state.files["optimizer"].name))


def check_progress(checkpoint: Checkpoint, data: DataFingerprint, batch_sizes: list[int]) -> None:
    """Refuse a checkpoint of other training data, or whose progress does not add up."""
    state, folder = checkpoint.state, checkpoint.folder
    if state.data != data:
        raise CheckpointError(
            f"{folder}: the checkpoint was trained on other data ({state.data.samples} samples, "
            f"SHA-256 {state.data.sha256[:12]}...), this run has {data.samples} samples, "
            f"SHA-256 {data.sha256[:12]}..."
        )
    progress = state.progress
    per_epoch = len(batch_sizes)
    problems = [
        (progress.position < per_epoch, f"position {progress.position} within an epoch of {per_epoch} batches"),
        (
            progress.step == progress.epoch * per_epoch + progress.position,
            f"step {progress.step} after {progress.epoch} epochs and {progress.position} batches",
        ),
        (
            len(progress.step_losses) == progress.step,
            f"{len(progress.step_losses)} step losses for {progress.step} steps",
        ),
        (len(progress.history) == progress.epoch, f"{len(progress.history)} history rows for {progress.epoch} epochs"),
        (
            progress.samples_seen == progress.epoch * data.samples + sum(batch_sizes[: progress.position]),
            f"{progress.samples_seen} samples seen at step {progress.step}",
        ),
        (bool(np.isfinite(progress.step_losses).all()), "non-finite step losses"),
    ]
    for fine, what in problems:
        if not fine:
            raise CheckpointError(f"{folder}: the checkpoint's progress does not add up ({what})")
