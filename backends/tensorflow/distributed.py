"""TensorFlow's side of data-parallel training: one MultiWorkerMirroredStrategy per worker process.

Each worker is one replica on one device (as with torchrun), on one host or many; the
engine (``engine.py``) runs its step with ``strategy.run`` and all-reduces the gradients
with the replica context's collectives; batch statistics are all-reduced in ``normalization.py``.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context

from archspec.errors import BackendUnavailableError
from archspec.training.cluster import Cluster

_strategy: tf.distribute.Strategy | None = None
_cluster: Cluster | None = None


@contextlib.contextmanager
def join(cluster: Cluster, device: str):
    """Create this process's strategy for ``cluster`` (once) and enter its scope.

    TensorFlow fixes its collectives when its runtime starts, so this must come before any
    other TensorFlow op in the process.
    """
    global _strategy, _cluster
    if _strategy is None:
        os.environ["TF_CONFIG"] = cluster.environment()["TF_CONFIG"]
        threads = os.environ.get("ARCHSPEC_WORKER_THREADS")
        try:
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(int(threads))
            gpus = tf.config.list_physical_devices("GPU")
            if gpus and device != "cpu":
                tf.config.set_visible_devices(gpus[cluster.local_rank % len(gpus)], "GPU")
            elif gpus:
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError as error:
            raise BackendUnavailableError(
                "TensorFlow was already running in this process, so it cannot join a cluster now "
                f"(start the worker in a fresh process): {error}"
            ) from None
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=cluster.timeout)
        _strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        _cluster = cluster
    elif _cluster != cluster:
        raise BackendUnavailableError("this process already joined another TensorFlow cluster")
    with _strategy.scope():
        yield


def leave(engine) -> None:
    """Wait at the coordination service's barrier until every worker is done (``engine``: unused).

    A worker whose last all-reduce has returned may still be read from by a peer whose
    own part of it is pending (TensorFlow's collectives pull buffers); exiting before the
    peer is done fails the peer's collective. The strategy itself lives as long as the
    process (TensorFlow cannot create a second one in it).
    """
    if _strategy is not None and _cluster is not None:
        context.context().wait_at_barrier("archspec-leave", int(_cluster.timeout * 1000))


def strategy() -> tf.distribute.Strategy:
    if _strategy is None:
        raise BackendUnavailableError("no TensorFlow cluster was joined in this process")
    return _strategy


def local(value):
    """This worker's value of a strategy.run result (each worker is one replica)."""
    return strategy().experimental_local_results(value)[0]


@tf.function(input_signature=[tf.TensorSpec([None], tf.float64)])
def _all_reduce_sum(values):
    def replica(v):
        with tf.device("/CPU:0"):  # a placed tensor: the collective needs its device
            v = tf.identity(v)
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, v)

    return local(strategy().run(replica, args=(values,)))


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``values`` over all workers (float64)."""
    return _all_reduce_sum(tf.constant(np.asarray(values, dtype=np.float64))).numpy()
