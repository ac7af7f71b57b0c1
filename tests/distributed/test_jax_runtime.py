"""JAX's multi-process runtime as the JAX backend joins it (``backends/jax/distributed.py``):
two processes on loopback with gloo collectives, and the refusal of a process that already
started JAX. Training with workers is tested with the other backends' tests (test_parity.py...)."""

import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from archspec.training.cluster import free_ports

pytest.importorskip("flax")

_WORKER = """
import importlib, sys
import numpy as np
from archspec.training.cluster import Cluster
distributed = importlib.import_module("archspec.backends.jax.distributed")
rank, port = int(sys.argv[1]), sys.argv[2]
cluster = Cluster("jax", rank, 2, (f"127.0.0.1:{port}",), rank, 2, 20.0)
for _ in range(2):  # joining twice is joining once
    with distributed.join(cluster, "cpu"):
        pass
values = np.array([rank + 1.0, 0.1 * (rank + 1), 1e300 * rank], dtype=np.float64)
total = distributed.sum_over_workers(values)
print("SUM", repr(total.tolist()), total.dtype, distributed.device().process_index)
distributed.leave(None)
"""


def test_two_jax_processes_join_sum_and_leave():
    port = free_ports(1)[0]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(rank), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "ARCHSPEC_WORKER_THREADS": "1"},
        )
        for rank in (0, 1)
    ]
    for rank, worker in enumerate(workers):
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, f"worker {rank}: {stderr[-2000:]}"
        # float64 (not JAX's float32 default), in rank order, the same on both; gloo's
        # connection line does not reach the terminal.
        assert f"SUM [3.0, {0.1 + 0.2!r}, 1e+300] float64 {rank}" in stdout, stdout
        assert "Gloo" not in stdout, stdout


def test_a_process_that_already_ran_jax_cannot_join():
    code = (
        "import importlib, jax.numpy as jnp\n"
        "from archspec.training.cluster import Cluster\n"
        "distributed = importlib.import_module('archspec.backends.jax.distributed')\n"
        "jnp.ones(2).sum()\n"
        f"with distributed.join(Cluster('jax', 0, 2, ('127.0.0.1:{free_ports(1)[0]}',), timeout=5.0), 'cpu'):\n"
        "    pass\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"archspec.errors.BackendUnavailableError: JAX {version('jax')} could not join the cluster: "
        "jax.distributed.initialize() must be called before any JAX calls"
    ), last
