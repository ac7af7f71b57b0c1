"""JAX's side of data-parallel training: ``jax.distributed`` with one device per worker process.

Every worker is one JAX process (``jax.distributed.initialize``; gloo collectives on the CPU,
NCCL on GPUs) holding one device; the workers' devices form a one-axis mesh (``AXIS``).
A training step is one SPMD program over that mesh (``shard_map``): each worker computes
its share of the global batch, and ``jax.lax.psum`` sums the share-weighted gradients and
batch norm's sums across workers inside the program (``global_moments``, which batch norm
calls when its build context names the workers' axis), so the step is that of the global batch.

One program needs one shape on every worker, and the shares of a batch differ by a sample
when it does not divide evenly (51 = 26 + 25): every share is padded to the same row
count (``Shares.rows``, from ``batch_size``), and the padded rows are left out of every
sum (the loss's, the batch statistics') by the row mask ``valid``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from archspec.errors import BackendUnavailableError
from archspec.training.cluster import Cluster

AXIS = "workers"
"""The mesh axis of the workers: ``jax.lax.psum(x, AXIS)`` sums ``x`` over them."""

_cluster: Cluster | None = None
_mesh: Mesh | None = None

# The row mask of the share being traced (True at the share's real samples), set by the
# step while it traces the model under ``shard_map``; ``None``: one process, no mask.
_rows: contextvars.ContextVar[jax.Array | None] = contextvars.ContextVar("archspec_jax_rows", default=None)


@contextlib.contextmanager
def join(cluster: Cluster, device: str) -> Iterator[None]:
    """Join ``cluster`` as JAX process ``cluster.rank`` (once per process) on ``device``.

    Must come before JAX's first computation in the process: JAX fixes its devices (and,
    on the CPU, its cross-process collectives) when its runtime starts. On GPUs each worker
    takes GPU ``local_rank`` (modulo the GPUs present); on the CPU, JAX's one CPU device.
    """
    global _cluster, _mesh
    if _cluster is None:
        gpus = _gpu_count()
        use_gpu = device == "cuda" or (device == "auto" and gpus > 0)
        if use_gpu and gpus == 0:
            raise BackendUnavailableError(
                "expected a CUDA GPU for device 'cuda', received none: install jax[cuda12] on a machine with a GPU"
            )
        if jax.distributed.is_initialized():
            raise BackendUnavailableError(
                "jax.distributed was already initialized in this process, so it cannot join an archspec "
                "cluster now (start the worker in a fresh process)"
            )
        if os.environ.get("ARCHSPEC_WORKER_THREADS") == "1" and not use_gpu:
            # One core per worker: XLA's CPU kernels run on the calling thread.
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
        platform = "gpu" if use_gpu else "cpu"
        try:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.config.update("jax_platforms", "cuda,cpu" if use_gpu else "cpu")
            jax.distributed.initialize(
                coordinator_address=cluster.addresses[0],
                num_processes=cluster.world_size,
                process_id=cluster.rank,
                local_device_ids=[cluster.local_rank % gpus] if use_gpu else None,
                # Starting (importing JAX on a busy machine) may take longer than a lost peer may.
                initialization_timeout=max(120, math.ceil(cluster.timeout)),
                heartbeat_timeout_seconds=max(10, math.ceil(cluster.timeout)),
            )
            devices = [_first_device_of(process, platform) for process in range(cluster.world_size)]
            # Connect the collectives now, where a failure is the join's (gloo prints a line
            # on stdout when it connects: not on the user's terminal).
            with _quiet_stdout():
                multihost_utils.sync_global_devices("archspec-join")
        except (RuntimeError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise BackendUnavailableError(f"JAX {jax.__version__} could not join the cluster: {message}") from None
        _mesh = Mesh(np.array(devices), (AXIS,))
        _cluster = cluster
    elif _cluster != cluster:
        raise BackendUnavailableError("this process already joined another JAX cluster")
    yield


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 points at /dev/null meanwhile (C++ code writes there directly)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def leave(engine: Any) -> None:
    """Wait until every worker is here, then shut ``jax.distributed`` down (``engine``: unused).

    A worker whose last all-reduce has returned may still be needed by a peer whose part of
    it is pending; the barrier keeps it until all are done.
    """
    global _cluster, _mesh
    if _cluster is not None and jax.distributed.is_initialized():
        multihost_utils.sync_global_devices("archspec-leave")
        jax.distributed.shutdown()
    _cluster = None
    _mesh = None


def axis_name() -> str | None:
    """The workers' axis name (``AXIS``) once this process joined a cluster, else ``None``."""
    return AXIS if _cluster is not None else None


def cluster() -> Cluster:
    if _cluster is None:
        raise BackendUnavailableError("no JAX cluster was joined in this process")
    return _cluster


def mesh() -> Mesh:
    """The workers' mesh: one device per worker, in rank order, on the axis ``AXIS``."""
    if _mesh is None:
        raise BackendUnavailableError("no JAX cluster was joined in this process")
    return _mesh


def device() -> jax.Device:
    """This worker's device (the one the model and the training data live on)."""
    return next(d for d in mesh().devices.flat if d.process_index == jax.process_index())


def _gpu_count() -> int:
    """The CUDA GPUs JAX could use here, found without starting JAX's runtime (that must wait
    for ``jax.distributed.initialize``): none without JAX's CUDA plugin."""
    if not any(importlib.util.find_spec(name) for name in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")])
    folder = "/proc/driver/nvidia/gpus"
    return len(os.listdir(folder)) if os.path.isdir(folder) else 0


def _first_device_of(process: int, platform: str) -> jax.Device:
    for candidate in jax.devices(platform):
        if candidate.process_index == process:
            return candidate
    raise BackendUnavailableError(f"expected a {platform} device on JAX process {process}, received none")


# --- the step over the mesh ------------------------------------------------------------


def global_moments(x: jax.Array, axis_name: str) -> tuple[jax.Array, jax.Array]:
    """Mean and biased variance over every axis but the last, across all workers' shares.

    Batch norm's statistics inside a worker step (``Shares.gradients``): two passes, as on
    one process: the mean from the summed sums and counts, then the variance from the summed
    squared deviations; the share's padded rows are left out. ``psum`` differentiates (its
    transpose sums the workers' cotangents), so gradients flow across workers.
    """
    axes = tuple(range(x.ndim - 1))
    valid = _rows.get()
    if valid is None:
        valid = jnp.ones(x.shape[0], dtype=bool)
    mask = valid.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    count = jnp.sum(valid.astype(x.dtype)) * (math.prod(x.shape[1:-1]))
    total, count = jax.lax.psum((jnp.sum(x * mask, axis=axes), count), axis_name)
    mean = total / count
    var = jax.lax.psum(jnp.sum(jnp.square(x - mean) * mask, axis=axes), axis_name) / count
    return mean, var


@contextlib.contextmanager
def rows(valid: jax.Array) -> Iterator[None]:
    """While tracing a worker's share: ``valid`` (bool ``(rows,)``) marks its real samples."""
    token = _rows.set(valid)
    try:
        yield
    finally:
        _rows.reset(token)


class Shares:
    """Runs a worker's share of each batch as one program over the workers' mesh.

    ``rows``: every share is padded to this many samples (the largest share of a batch of
    ``batch_size``), so that the program has one shape on every worker and for every batch.
    """

    def __init__(self, batch_size: int):
        self.mesh = mesh()
        self.world_size = self.mesh.devices.size
        self.rows = -(-batch_size // self.world_size)
        self.device = device()
        self._replicated = NamedSharding(self.mesh, PartitionSpec())
        self._split = NamedSharding(self.mesh, PartitionSpec(AXIS))

    def gradients(self, share_loss: Callable[..., tuple[jax.Array, Any]]) -> Callable[..., tuple[Any, Any, Any]]:
        """The gradient program of ``share_loss(params, common, indices, valid, offset) -> (loss, aux)``.

        ``share_loss`` is one worker's mean loss over the real rows (``valid``, bool
        ``(rows,)``) of its share ``indices`` (regularisers included), dropout masks at
        global positions from ``offset``; ``aux`` (the new batch statistics) must come out
        the same on every worker. The program, run by ``run``, differentiates ``fraction``
        times each worker's loss and sums the gradients over the workers: the gradient of
        the global batch's mean loss. The weight is applied before differentiating: batch
        norm's ``psum`` carries every worker's cotangents to the others in the backward pass
        (the transpose of a ``psum`` is a ``psum``), and those must already be weighted.
        """
        split = PartitionSpec(AXIS)

        def body(params, common, indices, count, offset, fraction):
            indices, count, offset, fraction = indices[0], count[0], offset[0], fraction[0]
            valid = jnp.arange(indices.shape[0]) < count

            def weighted(params):
                with rows(valid):
                    loss, aux = share_loss(params, common, indices, valid, offset)
                return loss * fraction.astype(loss.dtype), (loss, aux)

            (_, (loss, aux)), grads = jax.value_and_grad(weighted, has_aux=True)(params)
            grads = jax.tree.map(lambda g: jax.lax.psum(g, AXIS), grads)
            return loss[None], grads, aux

        mapped = jax.shard_map(
            body,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), PartitionSpec(), split, split, split, split),
            out_specs=(split, PartitionSpec(), PartitionSpec()),
            # Off: the psum of replicated gradients is the sum we mean (and its transpose a psum).
            check_vma=False,
        )
        return jax.jit(mapped)

    def run(
        self, program: Callable, params: Any, common: Any, indices: np.ndarray, offset: int, fraction: float
    ) -> tuple[jax.Array, Any, Any]:
        """``program`` (from ``gradients``) on this worker's share ``indices`` of a batch (starting
        at ``offset`` in it, ``fraction`` of it): (this worker's mean loss, the summed gradients,
        ``aux``), as arrays on this worker's device. Every worker must call it together."""
        count = len(indices)
        if not 0 < count <= self.rows:
            raise ValueError(f"expected a share of 1..{self.rows} samples, received {count}")
        padded = np.full(self.rows, indices[0], dtype=np.int32)
        padded[:count] = indices
        loss, grads, aux = program(
            self.replicate(params),
            self.replicate(common),
            self._split_block(padded),
            self._split_block(np.asarray(count, dtype=np.int32)),
            self._split_block(np.asarray(offset, dtype=np.int32)),
            self._split_block(np.asarray(fraction, dtype=jnp.result_type(float))),
        )
        return loss.addressable_data(0)[0], self.local(grads), self.local(aux)

    def replicate(self, tree: Any) -> Any:
        """``tree``'s arrays (the same on every worker) as global arrays replicated on the mesh
        (no copy: this worker's array is its replica; replicated arrays are kept as they are)."""

        def one(array):
            if isinstance(array, jax.Array) and array.sharding == self._replicated:
                return array
            array = jax.device_put(array, self.device)
            return jax.make_array_from_single_device_arrays(array.shape, self._replicated, [array])

        return jax.tree.map(one, tree)

    def local(self, tree: Any) -> Any:
        """A program's replicated results as arrays on this worker's device."""
        return jax.tree.map(lambda array: array.addressable_data(0), tree)

    def _split_block(self, array: np.ndarray) -> jax.Array:
        """This worker's ``array`` as its block of a global array split by worker."""
        block = np.asarray(array)[None]
        return jax.make_array_from_process_local_data(self._split, block, (self.world_size, *block.shape[1:]))


def sum_over_workers(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``values`` over all workers (float64), the same on every worker
    (the engine's ``all_reduce_sum``)."""
    values = np.asarray(values, dtype=np.float64)
    with jax.enable_x64(True):
        gathered = np.asarray(multihost_utils.process_allgather(values, tiled=False))
    return np.asarray(np.sum(gathered, axis=0, dtype=np.float64))
