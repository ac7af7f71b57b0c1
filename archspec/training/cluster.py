"""Who is who in a data-parallel run, and who gets which samples of each global batch.

archspec does not run a distributed runtime of its own: a worker is an ordinary training
process that joins its framework's (torch.distributed, or TensorFlow's
MultiWorkerMirroredStrategy). ``Cluster`` describes this process's place in the run; how a
framework's launcher writes that into the environment (torchrun's variables, ``TF_CONFIG``)
is each backend's ``environment.py``.

One semantics at any scale (``docs/semantics.md``): ``batch_size`` is the global batch;
worker r takes the r-th consecutive share of each batch of the neutral sample order (sizes
differ by at most one when the batch does not divide evenly); each worker's gradient is
weighted by its share of the batch, so the summed update is the gradient of the global
batch mean; batch statistics are summed across workers; dropout masks are indexed by the
global position of the sample in its batch.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np

from archspec.backend import load_environment
from archspec.errors import UsageError

DEFAULT_TIMEOUT = 30.0
"""Seconds a worker waits for a lost peer before giving up (``--worker-timeout``)."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a data-parallel run.

    ``addresses``: for torch the coordinator (``MASTER_ADDR:MASTER_PORT``) alone; for
    TensorFlow every worker's ``host:port`` in rank order (``TF_CONFIG``'s worker list).
    """

    backend: str
    rank: int
    world_size: int
    addresses: tuple[str, ...]
    local_rank: int = 0
    local_world_size: int = 1
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise UsageError(f"expected a rank in 0..{self.world_size - 1}, received {self.rank}")
        for address in self.addresses:
            split_address(address)

    @property
    def is_writer(self) -> bool:
        """Only rank 0 shows progress and writes metrics, checkpoints and results."""
        return self.rank == 0

    def environment(self) -> dict[str, str]:
        """The variables that make a process this worker (the backend's launcher's own names)."""
        return {"ARCHSPEC_WORKER_TIMEOUT": repr(self.timeout), **load_environment(self.backend).variables(self)}


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a worker address ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"expected a worker address HOST:PORT (port 1-65535), received {address!r}")
    return host, int(port)


def timeout_from_environment() -> float:
    """``$ARCHSPEC_WORKER_TIMEOUT`` (seconds), else ``DEFAULT_TIMEOUT``."""
    text = os.environ.get("ARCHSPEC_WORKER_TIMEOUT")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"expected ARCHSPEC_WORKER_TIMEOUT to be a positive number of seconds, received {text!r}")
    return value


def cluster_from_environment(backend: str) -> Cluster | None:
    """The cluster this process was started into by the backend's launcher, or None for a
    single process (read before any framework is imported)."""
    return load_environment(backend).cluster_from_environment(timeout_from_environment())


def manual_cluster(backend: str, rank: int, addresses: list[str], workers: int | None, timeout: float) -> Cluster:
    """A worker started by hand (``--rank R --cluster ADDR[,ADDR...]``).

    As the backend's environment says (``ONE_ADDRESS_PER_WORKER``): one address per worker, in
    rank order (TensorFlow; ``workers`` must agree if given), or the first address is the
    coordinator's and ``workers`` says how many join (torch).
    """
    if not addresses:
        raise UsageError("expected --cluster HOST:PORT[,HOST:PORT...] with --rank")
    for address in addresses:
        split_address(address)
    if load_environment(backend).ONE_ADDRESS_PER_WORKER:
        if workers not in (None, len(addresses)):
            raise UsageError(
                f"expected --workers to equal the number of --cluster addresses for {backend} "
                f"({len(addresses)}), received --workers {workers}"
            )
        return Cluster(backend, rank, len(addresses), tuple(addresses), timeout=timeout)
    if workers is None or workers < 2:
        raise UsageError(f"expected --workers N (N >= 2: how many workers join) with --rank for {backend}")
    return Cluster(backend, rank, workers, (addresses[0],), timeout=timeout)


def local_clusters(backend: str, workers: int, timeout: float) -> list[Cluster]:
    """One Cluster per worker of a run on this host, on loopback ports that are free now."""
    ports = free_ports(workers if load_environment(backend).ONE_ADDRESS_PER_WORKER else 1)
    addresses = tuple(f"127.0.0.1:{port}" for port in ports)
    return [Cluster(backend, rank, workers, addresses, rank, workers, timeout) for rank in range(workers)]


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on the loopback interface now."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


# --- the workers' shares -------------------------------------------------------------


def share_bounds(batch: int, world_size: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of worker ``rank``'s share of a global batch of ``batch`` samples.

    Consecutive shares; the first ``batch % world_size`` workers take one sample more.
    """
    size, extra = divmod(batch, world_size)
    start = rank * size + min(rank, extra)
    return start, start + size + (1 if rank < extra else 0)


def share(indices: np.ndarray, world_size: int, rank: int) -> tuple[np.ndarray, int, float]:
    """Worker ``rank``'s samples of one global batch: (indices, offset of the first one in
    the batch, fraction of the batch)."""
    start, stop = share_bounds(len(indices), world_size, rank)
    return indices[start:stop], start, (stop - start) / len(indices)


def check_batches(batch_sizes: list[int], world_size: int) -> None:
    """Every batch must give every worker at least one sample."""
    smallest = min(batch_sizes)
    if smallest < world_size:
        which = "the last batch" if batch_sizes[-1] == smallest and batch_sizes[0] != smallest else "each batch"
        raise UsageError(
            f"expected every batch to hold at least one sample per worker: {which} holds {smallest} sample(s) "
            f"for {world_size} workers; use fewer workers, or a batch_size and data size that leave "
            f"a last batch of at least {world_size}"
        )


NO_COMPILED_WORKERS = "compiled steps are not supported with several workers yet: drop --compiled (or workers)"
