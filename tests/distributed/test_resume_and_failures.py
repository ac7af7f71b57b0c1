"""Distributed runs: checkpoints cross worker counts, a lost worker ends the run cleanly,
workers can be started by hand, and bad requests are refused before any worker starts work.

The spec is the reliability tests' small MLP (batch norm and dropout; synthetic data, 15
steps an epoch), so each case is a few seconds of training plus worker start-up.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from reliability.support import DIVERGING, SPEC, STEPS, checkpoint_step, write_spec

import archspec
from archspec.backend import BACKENDS, load_environment
from archspec.comparison import tensor_relative_difference
from archspec.errors import TrainingError, UsageError
from archspec.training.checkpoints import read_checkpoint
from archspec.training.cluster import free_ports

CUT = 25  # the first run stops (and checkpoints) here, mid-epoch


def assert_follows(label, expected, actual):
    a, b = expected.step_losses, actual.step_losses
    assert len(a) == len(b) == STEPS, f"{label}: {len(a)} vs {len(b)} steps"
    relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    assert relative.max() <= 1e-9, f"{label}: step {int(np.argmax(relative))} differs by {relative.max():.3g} relative"
    wa, wb = expected.model.get_weights(), actual.model.get_weights()
    for name in wa:
        difference = tensor_relative_difference(wa[name], wb[name])
        assert difference <= 1e-8, f"{label}: final weight {name} differs by {difference:.3g} relative"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)], ids=["2-then-1", "1-then-2"])
def test_a_checkpoint_resumes_with_another_worker_count(tmp_path, backend, before, after):
    spec = write_spec(tmp_path)
    uninterrupted = archspec.train(spec, backend=backend, dtype="float64")
    run = tmp_path / "run"
    first = archspec.train(
        spec, backend=backend, dtype="float64", max_steps=CUT, checkpoint_every=10, out=run, workers=before
    )
    assert first.steps == CUT and checkpoint_step(run) == CUT
    assert read_checkpoint(run).state.backend == backend
    resumed = archspec.train(spec, backend=backend, resume=run, max_steps=STEPS, workers=after)
    assert resumed.config["resumed_at_step"] == CUT
    assert_follows(f"{backend} {before} -> {after} workers", uninterrupted, resumed)


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _rank_of(pid: int) -> int | None:
    import json

    try:
        variables = dict(
            item.split("=", 1) for item in (Path("/proc") / str(pid) / "environ").read_text().split("\0") if "=" in item
        )
    except OSError:
        return None
    if "TF_CONFIG" in variables:
        return json.loads(variables["TF_CONFIG"])["task"]["index"]
    for name in ("RANK", "JAX_PROCESS_ID"):
        if name in variables:
            return int(variables[name])
    return None


def _environment():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_killing_a_worker_ends_the_run_with_a_clear_error_and_the_checkpoint_resumes(tmp_path, backend):
    spec = write_spec(tmp_path, SPEC.replace("epochs: 4", "epochs: 400"))
    run = tmp_path / "run"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archspec",
            "train",
            str(spec),
            "--backend",
            backend,
            "--workers",
            "2",
            "--quiet",
            "--checkpoint-every",
            "4",
            "--out",
            str(run),
            "--worker-timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )
    deadline = time.monotonic() + 90
    while (checkpoint_step(run) or 0) < 8:
        assert launcher.poll() is None, launcher.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run never wrote its second checkpoint"
        time.sleep(0.05)
    workers = {_rank_of(pid): pid for pid in _children(launcher.pid)}
    assert set(workers) == {0, 1}, workers
    os.kill(workers[1], signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = launcher.communicate(timeout=60)
    took = time.monotonic() - killed
    assert launcher.returncode == 1, stderr[-2000:]
    assert "worker 1 of 2" in stderr and "SIGKILL" in stderr and "the other workers were stopped" in stderr, stderr
    assert "Traceback" not in stderr, stderr[-2000:]
    assert took < 20, f"the run took {took:.1f} s to stop after losing a worker"
    assert not Path(f"/proc/{workers[0]}").exists() or "zombie" in Path(f"/proc/{workers[0]}/status").read_text()

    step = checkpoint_step(run)
    assert step is not None and step >= 8 and step % 4 == 0, "the last checkpoint did not survive"
    target = step + 6
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "archspec",
            "train",
            str(spec),
            "--backend",
            backend,
            "--quiet",
            "--resume",
            str(run),
            "--max-steps",
            str(target),
        ],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert checkpoint_step(run) == target


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_started_by_hand_train_together(tmp_path, backend):
    spec = write_spec(tmp_path)
    ports = free_ports(2)
    one_each = load_environment(backend).ONE_ADDRESS_PER_WORKER  # TensorFlow; else the coordinator's alone
    cluster = ",".join(f"127.0.0.1:{port}" for port in (ports if one_each else ports[:1]))
    run = tmp_path / "run"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "archspec",
                "train",
                str(spec),
                "--backend",
                backend,
                "--quiet",
                "--dtype",
                "float64",
                "--max-steps",
                "20",
                "--out",
                str(run),
                "--rank",
                str(rank),
                "--cluster",
                cluster,
                "--workers",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
        )
        for rank in (0, 1)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-2000:]
    assert "worker 1 of 2: done (20 steps)" in outputs[1][0]
    assert "test" in outputs[0][0]  # rank 0 prints the metrics table
    single = archspec.train(spec, backend=backend, dtype="float64", max_steps=20)
    from safetensors.numpy import load_file

    weights = load_file(str(run / "weights.safetensors"))  # written by rank 0 alone
    for name, value in single.model.get_weights().items():
        assert tensor_relative_difference(value, weights[name]) <= 1e-8, name


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_run_stops_every_worker_with_the_one_worker_error(tmp_path, backend):
    errors = []
    for workers, run in ((1, tmp_path / "one"), (2, tmp_path / "two")):
        with pytest.raises(TrainingError) as caught:
            archspec.train(DIVERGING, backend=backend, out=run, checkpoint_every=1, workers=workers)
        errors.append(str(caught.value).replace(str(run), "RUN"))
        assert checkpoint_step(run) == 2
    assert errors[0].startswith("the training loss became nan at step 2 (epoch 1, batch 3 of 10): ")
    assert errors[1] == errors[0]


def test_refusals(tmp_path):
    spec = write_spec(tmp_path)
    with pytest.raises(UsageError, match="workers to be a positive integer"):
        archspec.train(spec, workers=0)
    with pytest.raises(UsageError, match="callbacks"):
        archspec.train(spec, workers=2, callbacks=[object()])
    with pytest.raises(UsageError, match="compiled steps"):
        archspec.train(spec, workers=2, compiled=True)
    # 65 samples in batches of 32: the last batch holds 1 sample, fewer than the 2 workers.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(65, 16)), rng.integers(0, 2, size=65)
    with pytest.raises(UsageError, match="the last batch holds 1 sample"):
        archspec.train(spec, data=(x, y), workers=2, backend="torch")


def test_torchrun_starts_the_workers(tmp_path):
    """`torchrun ... --no-python archspec train` (no --workers): each process joins torchrun's group."""
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    archspec_cli = Path(sys.executable).parent / "archspec"
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--no-python",
            str(archspec_cli),
            "train",
            str(spec),
            "--backend",
            "torch",
            "--quiet",
            "--dtype",
            "float64",
            "--max-steps",
            "20",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        env={**_environment(), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "worker 1 of 2: done (20 steps)" in done.stdout
    single = archspec.train(spec, backend="torch", dtype="float64", max_steps=20)
    from safetensors.numpy import load_file

    weights = load_file(str(run / "weights.safetensors"))
    for name, value in single.model.get_weights().items():
        assert tensor_relative_difference(value, weights[name]) <= 1e-8, name


_THREADS_AFTER_TRAINING = """
import os, sys
import archspec
archspec.train(sys.argv[1], backend="torch", dtype="float64", max_steps=4)
names = [(open(f"/proc/self/task/{t}/comm").read().strip()) for t in os.listdir("/proc/self/task")]
print(",".join(names))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from /proc")
def test_torch_workers_leave_no_gloo_threads_behind(tmp_path):
    """gloo's threads must be joined when training returns: one still freeing a collective's
    tensors while the interpreter finalises aborts the process (a flake seen under torchrun)."""
    spec = write_spec(tmp_path)
    port = free_ports(1)[0]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _THREADS_AFTER_TRAINING, str(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **_environment(),
                "RANK": str(rank),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": "1",
            },
        )
        for rank in (0, 1)
    ]
    for rank, worker in enumerate(workers):
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, f"worker {rank}: {stderr[-2000:]}"
        threads = stdout.strip().splitlines()[-1].split(",")
        assert not [name for name in threads if "gloo" in name], f"worker {rank}: {threads}"
