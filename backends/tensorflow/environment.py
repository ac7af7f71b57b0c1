"""``TF_CONFIG`` and ``KERAS_BACKEND``: what the environment says before TensorFlow is imported.
Imports neither TensorFlow nor Keras."""

from __future__ import annotations

import json
import os
import sys

from archspec.errors import BackendUnavailableError, UsageError
from archspec.training.cluster import Cluster

# TF_CONFIG lists one address per worker, in rank order.
ONE_ADDRESS_PER_WORKER = True


def preflight() -> None:
    """Refuse a Keras that runs (or would run) on another framework than TensorFlow."""
    wanted = os.environ.get("KERAS_BACKEND")
    if "keras" in sys.modules:
        active = sys.modules["keras"].backend.backend()
        if active != "tensorflow":
            raise BackendUnavailableError(
                f"Keras was already imported with the '{active}' backend in this process; "
                "archspec's tensorflow backend needs Keras on TensorFlow "
                "(unset KERAS_BACKEND or set it to 'tensorflow' before importing keras)"
            )
    elif wanted and wanted != "tensorflow":
        raise BackendUnavailableError(
            f"KERAS_BACKEND is set to '{wanted}'; archspec's tensorflow backend needs Keras on "
            "TensorFlow: unset KERAS_BACKEND or set it to 'tensorflow'"
        )


def cluster_from_environment(timeout: float) -> Cluster | None:
    """The cluster ``TF_CONFIG`` describes (a ``worker`` list and this process's
    ``task.index``), or None for a single process."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = [str(address) for address in config["cluster"]["worker"]]
        task = config.get("task", {})
        rank = int(task.get("index", 0))
        kind = task.get("type", "worker")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(
            'expected TF_CONFIG to be JSON like {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}, received ' + repr(text[:200])
        ) from None
    if kind != "worker" or set(config["cluster"]) - {"worker"}:
        raise UsageError(
            "expected a TF_CONFIG 'worker' cluster only (archspec's TensorFlow workers have no chief, ps or "
            f"evaluator tasks), received task type {kind!r}, cluster jobs {sorted(config['cluster'])}"
        )
    if len(workers) <= 1:
        return None
    return Cluster("tensorflow", rank, len(workers), tuple(workers), timeout=timeout)


def variables(cluster: Cluster) -> dict[str, str]:
    """The ``TF_CONFIG`` of ``cluster``'s worker (the inverse of the above)."""
    config = {"cluster": {"worker": list(cluster.addresses)}, "task": {"type": "worker", "index": cluster.rank}}
    return {"TF_CONFIG": json.dumps(config)}
