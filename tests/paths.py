"""Where tests find the repository's folders and the MNIST copy."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def mnist_dir() -> Path:
    """$ARCHSPEC_DATA_DIR/mnist (set by the Makefile) when present, else the shared copy beside the repo."""
    env = os.environ.get("ARCHSPEC_DATA_DIR")
    if env and (Path(env) / "mnist").is_dir():
        return Path(env) / "mnist"
    return ROOT.parent / "shared" / "data" / "mnist"
