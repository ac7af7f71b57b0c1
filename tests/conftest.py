"""Shared fixtures: the repository's folders."""

from pathlib import Path

import pytest
from paths import CONFIGS, ROOT


@pytest.fixture(scope="session")
def root_dir() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def configs_dir() -> Path:
    return CONFIGS
