"""The backends' environment modules: the cluster a launcher describes (torchrun's variables,
``TF_CONFIG``, JAX's ``JAX_COORDINATOR_ADDRESS``...), read back and written, and the check before
a framework loads; no framework."""

import json
import os
import subprocess
import sys

import pytest

from archspec.backend import BACKENDS, load_environment
from archspec.errors import BackendUnavailableError, UsageError
from archspec.training.cluster import Cluster, cluster_from_environment, manual_cluster

TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
JAX = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


@pytest.fixture
def clean(monkeypatch):
    for name in (*TORCHRUN, *JAX, "TF_CONFIG", "ARCHSPEC_WORKER_TIMEOUT", "KERAS_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_torchrun_variables_describe_a_cluster(clean):
    assert cluster_from_environment("torch") is None
    values = dict(RANK="1", WORLD_SIZE="3", LOCAL_RANK="1", LOCAL_WORLD_SIZE="3", MASTER_ADDR="10.0.0.2")
    for name, value in {**values, "MASTER_PORT": "29500", "ARCHSPEC_WORKER_TIMEOUT": "12.5"}.items():
        clean.setenv(name, value)
    cluster = cluster_from_environment("torch")
    assert cluster == Cluster("torch", 1, 3, ("10.0.0.2:29500",), 1, 3, 12.5)
    assert cluster.environment() == {**values, "MASTER_PORT": "29500", "ARCHSPEC_WORKER_TIMEOUT": "12.5"}
    clean.setenv("WORLD_SIZE", "1")
    assert cluster_from_environment("torch") is None  # one process is no cluster


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("RANK", "x", "expected RANK to be a non-negative integer in a torchrun environment, received 'x'"),
        ("RANK", "2", "expected a rank in 0..1, received 2"),
        ("MASTER_PORT", "70000", "expected a worker address HOST:PORT (port 1-65535), received '127.0.0.1:70000'"),
    ],
)
def test_bad_torchrun_variables_are_refused(clean, name, value, message):
    for key, default in dict(RANK="0", WORLD_SIZE="2", MASTER_PORT="29500").items():
        clean.setenv(key, default)
    clean.setenv(name, value)
    with pytest.raises(UsageError) as caught:
        cluster_from_environment("torch")
    assert str(caught.value) == message


def test_tf_config_describes_a_cluster(clean):
    assert cluster_from_environment("tensorflow") is None
    workers = ["127.0.0.1:2001", "127.0.0.1:2002"]
    clean.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 1}}))
    cluster = cluster_from_environment("tensorflow")
    assert cluster == Cluster("tensorflow", 1, 2, tuple(workers), timeout=30.0)
    assert json.loads(cluster.environment()["TF_CONFIG"]) == json.loads(os.environ["TF_CONFIG"])


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "expected TF_CONFIG to be JSON like"),
        (
            json.dumps({"cluster": {"worker": ["a:1", "b:2"], "ps": ["c:3"]}}),
            "expected a TF_CONFIG 'worker' cluster only",
        ),
        (json.dumps({"cluster": {"worker": ["a:1", "b"]}}), "expected a worker address HOST:PORT"),
    ],
)
def test_bad_tf_configs_are_refused(clean, config, message):
    clean.setenv("TF_CONFIG", config)
    with pytest.raises(UsageError, match=message):
        cluster_from_environment("tensorflow")


def test_jax_variables_describe_a_cluster(clean):
    assert cluster_from_environment("jax") is None
    values = dict(JAX_COORDINATOR_ADDRESS="10.0.0.2:1234", JAX_NUM_PROCESSES="3", JAX_PROCESS_ID="2")
    for name, value in values.items():
        clean.setenv(name, value)
    cluster = cluster_from_environment("jax")
    assert cluster == Cluster("jax", 2, 3, ("10.0.0.2:1234",), 2, 3, 30.0)
    assert cluster.environment() == {**values, "ARCHSPEC_WORKER_TIMEOUT": "30.0"}
    clean.setenv("JAX_NUM_PROCESSES", "1")
    assert cluster_from_environment("jax") is None  # one process is no cluster


@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "JAX_PROCESS_ID",
            "-1",
            "expected JAX_PROCESS_ID to be a non-negative integer in a JAX cluster, received '-1'",
        ),
        ("JAX_PROCESS_ID", "2", "expected a rank in 0..1, received 2"),
        ("JAX_COORDINATOR_ADDRESS", "nohost", "expected JAX_COORDINATOR_ADDRESS as HOST:PORT in a JAX cluster"),
        ("JAX_COORDINATOR_ADDRESS", "h:0", "expected a worker address HOST:PORT (port 1-65535), received 'h:0'"),
    ],
)
def test_bad_jax_variables_are_refused(clean, name, value, message):
    for key, default in dict(
        JAX_COORDINATOR_ADDRESS="127.0.0.1:29500", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="0"
    ).items():
        clean.setenv(key, default)
    clean.setenv(name, value)
    with pytest.raises(UsageError) as caught:
        cluster_from_environment("jax")
    assert str(caught.value).startswith(message)


def test_a_bad_worker_timeout_is_refused(clean):
    clean.setenv("ARCHSPEC_WORKER_TIMEOUT", "-1")
    with pytest.raises(UsageError, match="expected ARCHSPEC_WORKER_TIMEOUT to be a positive number of seconds"):
        cluster_from_environment("torch")


def test_workers_started_by_hand():
    assert manual_cluster("torch", 1, ["h:1"], 2, 5.0) == Cluster("torch", 1, 2, ("h:1",), timeout=5.0)
    assert manual_cluster("tensorflow", 0, ["h:1", "h:2"], None, 5.0).world_size == 2
    assert manual_cluster("jax", 1, ["h:1"], 2, 5.0) == Cluster("jax", 1, 2, ("h:1",), timeout=5.0)
    with pytest.raises(UsageError, match="expected --workers to equal the number of --cluster addresses"):
        manual_cluster("tensorflow", 0, ["h:1", "h:2"], 3, 5.0)


def test_the_keras_preflight_refuses_another_keras_backend(clean):
    load_environment("torch").preflight()  # nothing to check
    clean.setenv("KERAS_BACKEND", "jax")
    clean.delitem(sys.modules, "keras", raising=False)  # as in a process that has not imported keras yet
    with pytest.raises(BackendUnavailableError, match="KERAS_BACKEND is set to 'jax'"):
        load_environment("tensorflow").preflight()


def test_reading_the_environment_imports_no_framework():
    code = (
        "import sys; from archspec.backend import load_environment; "
        f"[load_environment(name).cluster_from_environment(30.0) for name in {BACKENDS!r}]; "
        "print('FRAMEWORKS', [m for m in ('torch', 'tensorflow', 'keras', 'jax', 'flax') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "FRAMEWORKS []" in result.stdout
