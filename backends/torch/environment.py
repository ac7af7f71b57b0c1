"""torchrun's environment: the cluster a torch worker was started into. Imports no torch.

``torchrun`` (and ``Cluster.environment`` for archspec's own launcher) describe a worker
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; the core reads them here before torch is imported.
"""

from __future__ import annotations

import os

from archspec.errors import UsageError
from archspec.training.cluster import Cluster, split_address

# All workers meet at one rendezvous address (MASTER_ADDR:MASTER_PORT); WORLD_SIZE says how many.
ONE_ADDRESS_PER_WORKER = False


def preflight() -> None:
    """Nothing to check before torch is imported."""


def cluster_from_environment(timeout: float) -> Cluster | None:
    """The cluster torchrun's variables describe, or None for a single process."""
    if os.environ.get("WORLD_SIZE") is None:
        return None
    values = {}
    for name, default in (
        ("WORLD_SIZE", None),
        ("RANK", None),
        ("LOCAL_RANK", "0"),
        ("LOCAL_WORLD_SIZE", "1"),
        ("MASTER_PORT", None),
    ):
        text = os.environ.get(name, default)
        if text is None or not text.isdigit():
            raise UsageError(
                f"expected {name} to be a non-negative integer in a torchrun environment, received {text!r}"
            )
        values[name] = int(text)
    if values["WORLD_SIZE"] <= 1:
        return None
    address = f"{os.environ.get('MASTER_ADDR', '127.0.0.1')}:{values['MASTER_PORT']}"
    return Cluster(
        "torch",
        values["RANK"],
        values["WORLD_SIZE"],
        (address,),
        values["LOCAL_RANK"],
        values["LOCAL_WORLD_SIZE"],
        timeout,
    )


def variables(cluster: Cluster) -> dict[str, str]:
    """The variables torchrun would set for ``cluster``'s worker (the inverse of the above)."""
    host, port = split_address(cluster.addresses[0])
    return {
        "RANK": str(cluster.rank),
        "WORLD_SIZE": str(cluster.world_size),
        "LOCAL_RANK": str(cluster.local_rank),
        "LOCAL_WORLD_SIZE": str(cluster.local_world_size),
        "MASTER_ADDR": host,
        "MASTER_PORT": str(port),
    }
