"""One local worker of a job (``python -m archspec.training.worker JOB_FILE``): train as this
rank; rank 0 writes the result the launcher reads; any failure is reported for the launcher."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from archspec.errors import ArchSpecError
from archspec.training.cluster import Cluster, cluster_from_environment
from archspec.training.jobs import load_data
from archspec.training.run import run_training
from archspec.weights import atomic_write_bytes


def worker_main(path: str) -> int:
    """Read the job, train as the rank the environment names, and (rank 0) write the result."""
    job = json.loads(Path(path).read_text())
    folder = Path(job["result"])
    backend = job["backend"]
    cluster = cluster_from_environment(backend)
    try:
        data = load_data(job["data"]) if job["data"] else None
        result = run_training(job["spec"], backend, cluster, data=data, callbacks=None, **job["options"])
        if cluster is None or cluster.is_writer:
            result.model.save_weights(folder / "weights.safetensors")
            summary = {
                "history": result.history,
                "step_losses": [float(v) for v in result.step_losses],
                "final": result.final,
                "timings": result.timings,
                "steps": result.steps,
                "samples_seen": result.samples_seen,
                "config": result.config,
            }
            atomic_write_bytes(folder / "result.json", json.dumps(summary).encode())
        # Everything is on disk: skip the interpreter's teardown, where a framework's
        # communication threads can abort the process after a successful run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    except ArchSpecError as error:
        _report(folder, cluster, type(error).__name__, str(error), True)  # the launcher raises it
        return error.exit_code
    except Exception as error:  # a framework's own error (a lost peer, for one): report it, then fail
        _report(folder, cluster, type(error).__name__, f"{type(error).__name__}: {error}", False)
        if os.environ.get("ARCHSPEC_DEBUG"):
            raise
        return 1  # the launcher names this worker and its error (ARCHSPEC_DEBUG=1 shows the traceback)


def _report(folder: Path, cluster: Cluster | None, kind: str, message: str, own: bool) -> None:
    rank = cluster.rank if cluster is not None else 0
    (folder / f"error-{rank}.json").write_text(json.dumps({"type": kind, "message": message, "archspec": own}))


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
