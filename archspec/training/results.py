"""What a training run returns (``TrainResult``) and what it leaves in its run folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files import PREPROCESSING_FILE, FileSplits, preprocessing_bytes
from archspec.errors import CheckpointError
from archspec.weights import atomic_write_bytes


@dataclass
class TrainResult:
    """What ``train`` returns. ``history`` has one row per epoch; ``final`` holds the
    inference-mode loss and metrics of every split after training."""

    backend: str
    model: Any
    history: list[dict[str, float]]
    step_losses: np.ndarray
    final: dict[str, dict[str, float]]
    timings: dict[str, float]
    steps: int
    samples_seen: int
    config: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """A small text table of the final metrics, one row per split."""
        names = sorted({k for split in self.final.values() for k in split})
        header = ["split", *names]
        rows = [[split, *[_fmt(values.get(k)) for k in names]] for split, values in self.final.items()]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        t = self.timings
        lines.append(
            f"{self.backend}: {self.steps} steps in {t['train_seconds']:.2f} s "
            f"({t['samples_per_second']:,.0f} samples/s); build {t['build_seconds']:.2f} s, import {t['import_seconds']:.2f} s"
        )
        return "\n".join(lines)


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def write_run(result: TrainResult, folder: Path) -> None:
    """metrics.json, history.csv and weights.safetensors, each written atomically."""
    try:
        _write_run(result, folder)
    except OSError as error:
        raise CheckpointError(f"{folder}: cannot write the run's results ({error.strerror or error})") from None


def write_preprocessing(splits, folder: Path) -> None:
    """``preprocessing.json`` beside the weights, for a run trained on data files."""
    if isinstance(splits, FileSplits):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / PREPROCESSING_FILE, preprocessing_bytes(splits))
        except OSError as error:
            raise CheckpointError(
                f"{folder}: cannot write the run's preprocessing ({error.strerror or error})"
            ) from None


def _write_run(result: TrainResult, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "backend": result.backend,
        "config": result.config,
        "final": result.final,
        "history": result.history,
        "timings": result.timings,
        "steps": result.steps,
        "param_count": result.model.param_count,
    }
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    keys = list(dict.fromkeys(k for row in result.history for k in row))
    lines = [",".join(keys)] + [",".join(repr(row.get(k, "")) for k in keys) for row in result.history]
    atomic_write_bytes(folder / "history.csv", ("\n".join(lines) + "\n").encode())
    result.model.save_weights(folder / "weights.safetensors")
