"""A run handed to local workers: the job they read, the data they share, rank 0's result.

``train(..., workers=N)`` writes the spec (and the user's arrays, if any) to a temporary
folder, the launcher starts N workers on it (``launcher.py``), and rank 0's result comes
back as this process's ``TrainResult``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from archspec.api import compile as compile_spec
from archspec.api import load_with_graph
from archspec.errors import UsageError
from archspec.training.cluster import NO_COMPILED_WORKERS
from archspec.training.launcher import launch
from archspec.training.preparation import take_weights
from archspec.training.results import TrainResult


def train_with_workers(spec, backend: str, workers: int, timeout: float, data, callbacks, options: dict) -> TrainResult:
    """Train in ``workers`` local processes; rank 0's result, with its model rebuilt here."""
    spec, _ = load_with_graph(spec)
    if callbacks:
        raise UsageError(
            "callbacks run in the training process and cannot follow several workers: "
            "train with workers=1, or read the run's metrics.json and history.csv (out=DIR)"
        )
    if options["compiled"]:
        raise UsageError(NO_COMPILED_WORKERS)
    with tempfile.TemporaryDirectory(prefix="archspec-job-") as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(spec.model_dump(mode="json", by_alias=True)))
        data_path = save_data(data, Path(folder)) if data is not None else None
        paths = {
            key: None if options[key] is None else str(Path(options[key]).resolve())
            for key in ("out", "resume", "data_dir", "logdir")
        }
        job = {"spec": str(spec_path), "backend": backend, "data": data_path, "options": {**options, **paths}}
        outcome = launch(job, workers, timeout)
    dtype = outcome["config"]["dtype"]
    model = compile_spec(spec, backend=backend, dtype=dtype, device=options["device"], weights=outcome["weights"])
    config = {**outcome["config"], "workers": workers}
    return TrainResult(
        backend,
        model,
        outcome["history"],
        np.asarray(outcome["step_losses"], dtype=np.float64),
        outcome["final"],
        outcome["timings"],
        outcome["steps"],
        outcome["samples_seen"],
        config,
    )


def save_data(data, folder: Path) -> str:
    """User arrays for the workers, as an .npz (no pickles): ``split/x``, ``split/y`` and
    the sample weights ``split/w``; arrays by input or output name as ``split/x/NAME``."""
    data, weights = take_weights(data)
    pairs = data if isinstance(data, dict) else {"train": data}
    arrays = {f"{split}/w": value for split, value in weights.items()}
    for split, pair in pairs.items():
        if pair is None:
            continue
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise UsageError(f"expected data[{split!r}] to be a pair (x, y), received {type(pair).__name__}")
        for role, value in zip(("x", "y"), pair):
            if isinstance(value, Mapping):
                arrays.update({f"{split}/{role}/{name}": np.asarray(array) for name, array in value.items()})
            else:
                arrays[f"{split}/{role}"] = np.asarray(value)
    path = folder / "data.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]  # the names are split/x, split/y: no savez option
    return str(path)


def load_data(path: str) -> dict[str, tuple]:
    """The arrays ``save_data`` wrote, by split: ``(x, y)``, or ``(x, y, sample_weight)``
    (``x`` and ``y`` dicts by name where they were given so)."""
    with np.load(path, allow_pickle=False) as arrays:
        pairs: dict[str, dict] = {}
        for key in arrays.files:
            split, part, *name = key.split("/", 2)
            if name:
                pairs.setdefault(split, {}).setdefault(part, {})[name[0]] = arrays[key]
            else:
                pairs.setdefault(split, {})[part] = arrays[key]
    return {split: (parts["x"], parts["y"]) + ((parts["w"],) if "w" in parts else ()) for split, parts in pairs.items()}
