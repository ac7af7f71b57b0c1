"""Training checkpoints: the state of a run, written as one unit and read back verified.

A run folder holds at most one checkpoint, ``DIR/checkpoint/``:

    state.json                      what to resume from, with a SHA-256 of every other file
    weights.000007.safetensors      canonical weights (an ordinary archspec weights file)
    optimizer.000007.safetensors    canonical optimizer slots, "{parameter}/{slot}"
    best.000007.safetensors         early stopping's best weights (with restore_best only)

A new checkpoint writes new, numbered array files (never a name the current state.json
refers to), makes them durable, then replaces state.json in one rename, and only then
deletes the files the old state.json referred to. A process killed at any instant
therefore leaves the old state.json with its files, or the new one with its files.
No pickle anywhere, and every byte is verified (SHA-256) before it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.numpy import load

from archspec.errors import CheckpointError
from archspec.weights import atomic_write_bytes, serialize_safetensors, weights_metadata

CHECKPOINT_FOLDER = "checkpoint"
STATE_FILE = "state.json"
_ARRAY_FILE = re.compile(r"^(weights|optimizer|best)\.(\d{6,})\.safetensors$")
_TEMPORARY_FILE = re.compile(r"^\.(state\.json|(weights|optimizer|best)\.\d{6,}\.safetensors)\..+\.tmp$")
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
    controls: dict[str, dict[str, int | float | None]] = Field(default_factory=dict)
    """The state of early stopping and reduce_on_plateau (``archspec/training/controls.py``)."""


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
    files: dict[Literal["weights", "optimizer", "best"], FileEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back and verified byte for byte: its state and its arrays."""

    folder: Path
    state: CheckpointState
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    best: dict[str, np.ndarray] | None = None


def checkpoint_folder(run_folder) -> Path:
    return Path(run_folder) / CHECKPOINT_FOLDER


def has_checkpoint(run_folder) -> bool:
    """Whether ``run_folder`` holds a checkpoint's state file (not verified)."""
    return (checkpoint_folder(run_folder) / STATE_FILE).is_file()


def _canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_checkpoint(
    run_folder,
    state: CheckpointState,
    weights: dict[str, np.ndarray],
    optimizer: dict[str, np.ndarray],
    best: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a complete checkpoint into ``run_folder/checkpoint`` as one unit (see above).

    ``state.files`` is filled in here. Raises CheckpointError when the folder cannot be
    written (the previous checkpoint then stays as it was).
    """
    folder = checkpoint_folder(run_folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(m.group(2)) for p in folder.iterdir() if (m := _ARRAY_FILE.match(p.name))), default=0)
        metadata = weights_metadata(state.spec_name, state.spec_hash, state.backend, state.archspec_version)
        payloads = {
            "weights": serialize_safetensors(weights, metadata),
            "optimizer": serialize_safetensors(
                optimizer, {"format": "archspec-optimizer-state", "spec_hash": state.spec_hash}
            ),
        }
        if best is not None:
            payloads["best"] = serialize_safetensors(best, metadata)
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
    best = state.files.get("best")
    best_weights = _read_arrays(folder / best.name, best) if best is not None else None
    return Checkpoint(folder, state, arrays["weights"], arrays["optimizer"], best_weights)


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
    except Exception as error:  # noqa: BLE001 (safetensors raises its own error types for malformed headers)
        raise CheckpointError(f"{path}: not a readable safetensors file ({_one_line(error)})") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
