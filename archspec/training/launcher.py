"""Start N local workers on a job, watch them, and turn a failure into one clear error.

When a worker fails or dies, the others are stopped within the worker timeout and the
error names the lost rank and the checkpoint that was kept; rank 0's checkpoints stay
as they were.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from archspec import errors
from archspec.errors import ArchSpecError, CheckpointError, TrainingError
from archspec.training.checkpoints import read_checkpoint
from archspec.training.cluster import DEFAULT_TIMEOUT, local_clusters

WORKER_MODULE = "archspec.training.worker"
"""Run as ``python -m archspec.training.worker JOB_FILE``: one worker of a job."""


def threads_per_worker(workers: int) -> int:
    """CPU threads each of ``workers`` local workers may use without oversubscribing the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def launch(job: dict, workers: int, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Run ``job`` (see ``worker.py``) in ``workers`` local processes and wait for them.

    Returns rank 0's result (``result.json`` plus the weights it wrote, as ``"weights"``).
    """
    backend = job["backend"]
    clusters = local_clusters(backend, workers, timeout)
    threads = str(threads_per_worker(workers))
    with tempfile.TemporaryDirectory(prefix="archspec-workers-") as scratch:
        folder = Path(scratch)
        job = {**job, "result": str(folder)}
        (folder / "job.json").write_text(json.dumps(job))
        processes = []
        try:
            for cluster in clusters:
                env = {
                    **os.environ,
                    **cluster.environment(),
                    "OMP_NUM_THREADS": threads,
                    "ARCHSPEC_WORKER_THREADS": threads,
                    "PYTHONUNBUFFERED": "1",
                }
                env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                command = [sys.executable, "-m", WORKER_MODULE, str(folder / "job.json")]
                # Rank 0 shows progress on this terminal; the others log to files, shown on failure.
                if cluster.rank == 0:
                    processes.append(subprocess.Popen(command, env=env))
                    continue
                with open(folder / f"worker-{cluster.rank}.log", "wb") as log:
                    processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            _watch(processes, folder, timeout, job["options"].get("out") or job["options"].get("resume"))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        result = json.loads((folder / "result.json").read_text())
        result["weights"] = _load_weights(folder / "weights.safetensors")
        return result


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path))


def _watch(processes: list[subprocess.Popen], folder: Path, timeout: float, out: str | None) -> None:
    """Wait for every worker; on the first failure stop the rest and raise an error naming it
    (and the checkpoint kept in ``out``, the run's folder)."""
    while True:
        codes = [process.poll() for process in processes]
        failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            break
        if all(code == 0 for code in codes):
            return
        time.sleep(0.05)
    # Found dead together: a worker that aborted (SIGABRT: gloo's "Connection reset by peer" when
    # the other died) is reacting to the other's death, and the other is the one to name.
    first = min(failed, key=lambda rank: (codes[rank] == -signal.SIGABRT, rank))
    # Give the others a moment to fail on their own (their own error is often clearer),
    # then stop them: a worker blocked on its lost peer must not keep the run alive.
    deadline = time.monotonic() + min(timeout, 5.0)
    while time.monotonic() < deadline and any(process.poll() is None for process in processes):
        time.sleep(0.05)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 5.0
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    raise _failure(processes, folder, first, out)


def _failure(processes: list[subprocess.Popen], folder: Path, first: int, out: str | None) -> ArchSpecError:
    """The error of a failed run: an ArchSpecError a worker reported (it says what was kept),
    else who died and how, and where the last checkpoint is."""
    for rank in [first, *range(len(processes))]:
        report = folder / f"error-{rank}.json"
        if report.is_file():
            error = json.loads(report.read_text())
            if error.get("archspec"):
                kind = getattr(errors, error["type"], None)
                if isinstance(kind, type) and issubclass(kind, ArchSpecError) and kind is not errors.SpecError:
                    return kind(error["message"])
                return TrainingError(error["message"])
    code = processes[first].returncode
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    detail = ""
    report = folder / f"error-{first}.json"
    if report.is_file():
        detail = ": " + json.loads(report.read_text())["message"].splitlines()[-1]
    elif first != 0 and code != -signal.SIGKILL:
        log = folder / f"worker-{first}.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
        detail = f" (last output: {lines[-1].strip()[:200]})" if lines else ""
    return TrainingError(
        f"worker {first} of {len(processes)} (pid {processes[first].pid}) {how}{detail}; "
        f"the other workers were stopped{_kept_checkpoint(out)}"
    )


def _kept_checkpoint(out: str | None) -> str:
    if out is None:
        return ""
    try:
        step = read_checkpoint(out).state.progress.step
    except CheckpointError:
        return ""
    return f"; the last checkpoint (step {step}) is kept in {out}: continue with --resume {out}"
