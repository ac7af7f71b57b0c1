"""Shared fixtures: the repository's folders; one thread per framework under pytest-xdist."""

import os
from pathlib import Path

import pytest
from paths import CONFIGS, ROOT

# `make test` runs the suite in one pytest-xdist worker per core (files distributed whole, so a
# module's shared fixtures are made once). Each worker then computes on one thread, set before
# torch or TensorFlow is imported, so the workers do not oversubscribe the cores.
if "PYTEST_XDIST_WORKER" in os.environ:
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="session")
def root_dir() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def configs_dir() -> Path:
    return CONFIGS
