"""Shared fixtures: the repository's folders and the MNIST copy used by tests."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root_dir() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def configs_dir() -> Path:
    return ROOT / "configs"


def mnist_dir() -> Path:
    """Where tests find MNIST: $ARCHSPEC_DATA_DIR (set by the Makefile), else the shared copy beside the repo."""
    env = os.environ.get("ARCHSPEC_DATA_DIR")
    if env and (Path(env) / "mnist").is_dir():
        return Path(env) / "mnist"
    return ROOT.parent / "shared" / "data" / "mnist"
