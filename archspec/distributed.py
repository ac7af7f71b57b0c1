"""Data-parallel training on the frameworks' own engines: who is who, who gets what, and the launcher.

archspec does not run a distributed runtime of its own. A worker is an ordinary
training process that joins ``torch.distributed`` (DistributedDataParallel, gloo on CPU,
NCCL on GPUs) or ``tf.distribute.MultiWorkerMirroredStrategy``; this module only
describes the cluster (``Cluster``, read from the environment that ``torchrun`` or a
``TF_CONFIG`` sets), splits every global batch into the workers' shares
(``share``), and starts N local workers and watches them (``launch``).

One semantics at any scale (``docs/semantics.md``): ``batch_size`` is the global batch;
worker r takes the r-th consecutive share of each batch of the neutral sample order
(sizes differ by at most one when the batch does not divide evenly); each worker's
gradient is weighted by its share of the batch, so the summed update is the gradient of
the global batch mean; batch statistics are summed across workers; dropout masks are
indexed by the global position of the sample in its batch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archspec.errors import ArchSpecError, CheckpointError, TrainingError, UsageError

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

    @property
    def is_writer(self) -> bool:
        """Only rank 0 shows progress and writes metrics, checkpoints and results."""
        return self.rank == 0

    def environment(self) -> dict[str, str]:
        """The variables that make a process this worker (torchrun's names; ``TF_CONFIG``)."""
        env = {"ARCHSPEC_WORKER_TIMEOUT": repr(self.timeout)}
        if self.backend == "torch":
            host, port = _split_address(self.addresses[0])
            env.update(
                RANK=str(self.rank),
                WORLD_SIZE=str(self.world_size),
                LOCAL_RANK=str(self.local_rank),
                LOCAL_WORLD_SIZE=str(self.local_world_size),
                MASTER_ADDR=host,
                MASTER_PORT=str(port),
            )
        else:
            env["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": list(self.addresses)}, "task": {"type": "worker", "index": self.rank}}
            )
        return env


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"expected a worker address HOST:PORT (port 1-65535). Received: {address!r}")
    return host, int(port)


def _timeout_from_environment() -> float:
    text = os.environ.get("ARCHSPEC_WORKER_TIMEOUT")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"expected ARCHSPEC_WORKER_TIMEOUT to be a positive number of seconds. Received: {text!r}")
    return value


def cluster_from_environment(backend: str) -> Cluster | None:
    """The cluster this process was started into, or None for a single process.

    torch: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` (and ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``), as ``torchrun`` sets them. TensorFlow: ``TF_CONFIG`` with a
    ``worker`` list and this process's ``task.index``.
    """
    timeout = _timeout_from_environment()
    if backend == "torch":
        world = os.environ.get("WORLD_SIZE")
        if world is None:
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
                    f"expected {name} to be a non-negative integer in a torchrun environment. Received: {text!r}"
                )
            values[name] = int(text)
        if values["WORLD_SIZE"] <= 1:
            return None
        address = f"{os.environ.get('MASTER_ADDR', '127.0.0.1')}:{values['MASTER_PORT']}"
        _split_address(address)
        return _checked(
            Cluster(
                "torch",
                values["RANK"],
                values["WORLD_SIZE"],
                (address,),
                values["LOCAL_RANK"],
                values["LOCAL_WORLD_SIZE"],
                timeout,
            )
        )
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
            '"task": {"type": "worker", "index": 0}}'
        ) from None
    if kind != "worker" or set(config["cluster"]) - {"worker"}:
        raise UsageError(
            "archspec's TensorFlow workers form a 'worker' cluster only (no chief, ps or evaluator tasks) "
            f"Received: TF_CONFIG task type {kind!r}, cluster jobs {sorted(config['cluster'])}"
        )
    if len(workers) <= 1:
        return None
    for address in workers:
        _split_address(address)
    return _checked(Cluster("tensorflow", rank, len(workers), tuple(workers), timeout=timeout))


def manual_cluster(backend: str, rank: int, addresses: list[str], workers: int | None, timeout: float) -> Cluster:
    """A worker started by hand (``--rank R --cluster ADDR[,ADDR...]``).

    torch: the first address is the coordinator's and ``workers`` says how many join;
    TensorFlow: one address per worker, in rank order (``workers`` must agree if given).
    """
    if not addresses:
        raise UsageError("expected --cluster HOST:PORT[,HOST:PORT...] with --rank")
    for address in addresses:
        _split_address(address)
    if backend == "tensorflow":
        if workers not in (None, len(addresses)):
            raise UsageError(
                f"expected --workers to equal the number of --cluster addresses for tensorflow "
                f"({len(addresses)}). Received: --workers {workers}"
            )
        return _checked(Cluster("tensorflow", rank, len(addresses), tuple(addresses), timeout=timeout))
    if workers is None or workers < 2:
        raise UsageError("expected --workers N (N >= 2: how many workers join) with --rank for torch")
    return _checked(Cluster("torch", rank, workers, (addresses[0],), timeout=timeout))


def _checked(cluster: Cluster) -> Cluster:
    if not 0 <= cluster.rank < cluster.world_size:
        raise UsageError(f"expected a rank in 0..{cluster.world_size - 1}. Received: {cluster.rank}")
    return cluster


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


# --- launching local workers -----------------------------------------------------------


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


def local_clusters(backend: str, workers: int, timeout: float) -> list[Cluster]:
    """One Cluster per worker of a run on this host, on loopback ports that are free now."""
    if backend == "torch":
        addresses = (f"127.0.0.1:{free_ports(1)[0]}",)
    else:
        addresses = tuple(f"127.0.0.1:{port}" for port in free_ports(workers))
    return [Cluster(backend, rank, workers, addresses, rank, workers, timeout) for rank in range(workers)]


def threads_per_worker(workers: int) -> int:
    """CPU threads each of ``workers`` local workers may use without oversubscribing the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def launch(job: dict, workers: int, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Run ``job`` (see ``worker_main``) in ``workers`` local processes and wait for them.

    Returns rank 0's result (``result.json`` plus the folder holding its weights). When a
    worker fails or dies, the others are stopped within ``timeout`` seconds and the error
    names the lost rank; rank 0's checkpoints stay as they were.
    """
    backend = job["backend"]
    clusters = local_clusters(backend, workers, timeout)
    threads = str(threads_per_worker(workers))
    with tempfile.TemporaryDirectory(prefix="archspec-workers-") as folder:
        folder = Path(folder)
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
                # Rank 0 shows progress on this terminal; the others log to files, shown on failure.
                log = None if cluster.rank == 0 else open(folder / f"worker-{cluster.rank}.log", "wb")
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "archspec.distributed", str(folder / "job.json")],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT if log else None,
                    )
                )
                if log is not None:
                    log.close()
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
    from safetensors.numpy import load_file

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
    first = failed[0]
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
                from archspec import errors

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
    from archspec.checkpoint import read_checkpoint

    if out is None:
        return ""
    try:
        step = read_checkpoint(out).state.progress.step
    except CheckpointError:
        return ""
    return f"; the last checkpoint (step {step}) is kept in {out}: continue with --resume {out}"


def worker_main(path: str) -> int:
    """One local worker: read the job, train as this rank, rank 0 writes the result."""
    job = json.loads(Path(path).read_text())
    folder = Path(job["result"])
    backend = job["backend"]
    cluster = cluster_from_environment(backend)
    try:
        from archspec.trainer import run_worker

        result = run_worker(job, cluster)
        if cluster is None or cluster.is_writer:
            from archspec.checkpoint import atomic_write_bytes

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
