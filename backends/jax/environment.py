"""JAX's cluster variables: the cluster a JAX worker was started into. Imports no JAX.

JAX has no launcher of its own: ``jax.distributed.initialize()`` reads ``JAX_COORDINATOR_ADDRESS``
(process 0's ``HOST:PORT``) from the environment and takes the number of processes and this
process's id as arguments. archspec's launcher (``Cluster.environment``) describes a worker with
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, which a user's own
launcher (a Slurm script, say) can set as well; the core reads them here before JAX is imported,
and ``distributed.join`` passes them to ``initialize``.
"""

from __future__ import annotations

import os

from archspec.errors import UsageError
from archspec.training.cluster import Cluster

# All workers meet at the coordinator's address (process 0); JAX_NUM_PROCESSES says how many.
ONE_ADDRESS_PER_WORKER = False


def preflight() -> None:
    """Nothing to check before JAX is imported."""


def cluster_from_environment(timeout: float) -> Cluster | None:
    """The cluster JAX's variables describe, or None for a single process."""
    if os.environ.get("JAX_NUM_PROCESSES") is None:
        return None
    values = {}
    for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        text = os.environ.get(name)
        if text is None or not text.isdigit():
            raise UsageError(f"expected {name} to be a non-negative integer in a JAX cluster, received {text!r}")
        values[name] = int(text)
    if values["JAX_NUM_PROCESSES"] <= 1:
        return None
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not address or ":" not in address:
        raise UsageError(f"expected JAX_COORDINATOR_ADDRESS as HOST:PORT in a JAX cluster, received {address!r}")
    return Cluster(
        "jax",
        values["JAX_PROCESS_ID"],
        values["JAX_NUM_PROCESSES"],
        (address,),
        values["JAX_PROCESS_ID"],
        values["JAX_NUM_PROCESSES"],
        timeout,
    )


def variables(cluster: Cluster) -> dict[str, str]:
    """The variables ``jax.distributed.initialize()`` reads for ``cluster``'s worker (the inverse of the above)."""
    return {
        "JAX_COORDINATOR_ADDRESS": cluster.addresses[0],
        "JAX_NUM_PROCESSES": str(cluster.world_size),
        "JAX_PROCESS_ID": str(cluster.rank),
    }
