"""Train one spec on several backends, each in its own process, and compare.

Each backend runs in a fresh subprocess (``python -m archspec.comparison.worker``) so
threads, memory and imports don't interfere and timings are fair. The workers write their
results as JSON and safetensors; this module computes the agreement and the report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors import safe_open

from archspec.api import load_with_graph
from archspec.backend import BACKENDS, backend_entry, check_name
from archspec.comparison.agreement import agreement
from archspec.comparison.report import CompareReport, write_report
from archspec.errors import BackendUnavailableError, TrainingError, UsageError
from archspec.spec.document import Spec
from archspec.weights import read_weights

WORKER_MODULE = "archspec.comparison.worker"
"""Run as ``python -m archspec.comparison.worker SPEC --backend NAME --out DIR``: one backend's run."""


def _spec_file(spec, folder: Path) -> Path:
    if isinstance(spec, Spec):
        path = folder / "spec.json"
        path.write_text(spec.model_dump_json(exclude_none=True))
        return path
    if isinstance(spec, (str, os.PathLike)) and Path(spec).is_file():
        return Path(spec).resolve()
    if isinstance(spec, str):
        path = folder / "spec.yaml"
        path.write_text(spec)
        return path
    raise UsageError(f"expected a Spec, a path or YAML text, received {type(spec).__name__}")


def installed(backend: str) -> bool:
    """Whether ``backend``'s framework is installed, found without importing it (each backend's
    run imports its framework in a process of its own; this one stays free of them)."""
    top = backend_entry(backend).framework.partition(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked in sys.modules (None)
        return False


def choose_backends(backends) -> tuple[tuple[str, ...], list[str]]:
    """The backends to compare and the notes to show: ``None`` takes every registered backend
    whose framework is installed and names the others in a note; named backends must be
    registered and installed (``BackendUnavailableError`` saying what to install)."""
    if backends is None:
        chosen = tuple(b for b in BACKENDS if installed(b))
        notes = [
            f"{b} left out: its framework '{backend_entry(b).framework}' is not installed ({backend_entry(b).install})"
            for b in BACKENDS
            if b not in chosen
        ]
        if not chosen:
            raise BackendUnavailableError(
                f"expected at least one installed backend among {', '.join(BACKENDS)}, received none: "
                + "; ".join(notes)
            )
        return chosen, notes
    chosen = tuple(dict.fromkeys(check_name(b) for b in backends))
    if not chosen:
        raise UsageError("expected at least one backend")
    for b in chosen:
        if not installed(b):
            entry = backend_entry(b)
            raise BackendUnavailableError(
                f"the {b} backend needs the '{entry.framework}' package, which is not installed; install it: {entry.install}"
            )
    return chosen, []


def _run_worker(spec_path: Path, backend: str, folder: Path, options: dict, progress: bool) -> dict:
    command = [
        sys.executable,
        "-m",
        WORKER_MODULE,
        str(spec_path),
        "--backend",
        backend,
        "--out",
        str(folder),
    ]
    for key, value in options.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    if progress:
        command.append("--progress")
    # TensorFlow's C++ start-up chatter would bury the progress bar; the user can still set it.
    environment = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}
    completed = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE, text=True, env=environment
    )
    if completed.returncode != 0:
        detail = (completed.stderr or "").strip().splitlines()[-1:] if not progress else []
        raise TrainingError(
            f"the {backend} run failed (exit code {completed.returncode}){': ' + detail[0] if detail else ''}"
        )
    return json.loads((folder / "result.json").read_text())


def compare(
    spec,
    backends=None,
    *,
    epochs=None,
    max_steps=None,
    dtype=None,
    data_dir=None,
    out=None,
    progress: bool = False,
    logdir=None,
) -> CompareReport:
    """Train ``spec`` on every backend in ``backends`` (each in its own process) and compare every
    pair of them.

    ``backends``: names from the registry (``archspec.backend.BACKENDS``); ``None``: every
    registered backend whose framework is installed (the others named in ``report.notes``).
    ``logdir``: TensorBoard event files, one run per backend (``logdir/<backend>``), so that
    the curves overlay in TensorBoard."""
    backends, notes = choose_backends(backends)
    with tempfile.TemporaryDirectory(prefix="archspec-compare-") as temporary:
        scratch = Path(temporary)
        spec_path = _spec_file(spec, scratch)
        loaded, _ = load_with_graph(spec_path)
        options = {"epochs": epochs, "max_steps": max_steps, "dtype": dtype, "data_dir": data_dir}
        results, losses, weights, predictions = {}, {}, {}, {}
        for backend in backends:
            folder = scratch / backend
            folder.mkdir()
            logs = {} if logdir is None else {"logdir": str(Path(logdir).resolve() / backend)}
            results[backend] = _run_worker(spec_path, backend, folder, {**options, **logs}, progress)
            arrays, _ = read_weights(folder / "weights.safetensors")
            weights[backend] = arrays
            extra = _read_arrays(folder / "arrays.safetensors")
            losses[backend] = extra["step_losses"]
            predictions[backend] = extra.get("test_predictions")
        measured = agreement(backends, losses, weights, predictions)
        report = CompareReport(
            loaded.name, backends, results, measured, {b: [float(v) for v in losses[b]] for b in backends}, notes
        )
        if out is not None:
            write_report(report, Path(out))
    return report


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The worker's extra arrays: step losses and test predictions."""
    with safe_open(str(path), framework="numpy") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (a safe_open handle is no dict)
