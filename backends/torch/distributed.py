"""torch's side of data-parallel training: join the process group that torchrun's environment describes.

Gradients are averaged by ``DistributedDataParallel`` (``engine.py``); batch statistics are
summed with an all-reduce that differentiates (``_AllReduceSum`` in ``normalization.py``).
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from archspec.errors import BackendUnavailableError
from archspec.training.cluster import Cluster


@contextlib.contextmanager
def join(cluster: Cluster, device: str):
    """Join ``cluster``'s process group (gloo on the CPU, NCCL on GPUs) if not joined yet."""
    threads = os.environ.get("ARCHSPEC_WORKER_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    use_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_gpu:
        torch.cuda.set_device(cluster.local_rank % torch.cuda.device_count())
    if not dist.is_initialized():
        backend = "nccl" if use_gpu else "gloo"
        if not dist.is_backend_available(backend):
            raise BackendUnavailableError(f"torch.distributed has no '{backend}' backend in this torch build")
        # env:// as under torchrun, whose agent may already host the store at MASTER_ADDR:MASTER_PORT.
        for name, value in cluster.environment().items():
            os.environ.setdefault(name, value)
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=cluster.rank,
            world_size=cluster.world_size,
            timeout=timedelta(seconds=cluster.timeout),
        )
    yield


def leave(engine) -> None:
    """Leave together and destroy the process group, joining gloo's threads while Python is alive.

    The group must be gone before the interpreter finalises: gloo's threads free the last
    collectives' tensors, and one doing so during finalisation aborts the process
    ("terminate called without an active exception"). ``DistributedDataParallel`` holds the
    group, and the engine holds it in a reference cycle, so the engine lets go of it first.
    """
    if dist.is_initialized():
        dist.barrier()
        engine.unwrap()
        dist.destroy_process_group()


def all_reduce_sum(values: np.ndarray, device: torch.device) -> np.ndarray:
    """The element-wise sum of ``values`` over all workers (float64)."""
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()
