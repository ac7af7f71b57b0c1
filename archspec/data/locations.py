"""Where data sets are looked for and stored: --data-dir, $ARCHSPEC_DATA_DIR, the user cache."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ARCHSPEC_DATA_DIR"


def cache_root() -> Path:
    """The user cache folder for data: ``$XDG_CACHE_HOME/archspec`` or ``~/.cache/archspec``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "archspec"


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Folders that may hold data sets, in lookup order.

    An explicit ``data_dir`` is the only folder searched, so that a wrong ``--data-dir`` is
    reported rather than silently replaced. Without it: ``$ARCHSPEC_DATA_DIR`` (when set), then
    the user cache folder.
    """
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    roots = []
    if os.environ.get(DATA_DIR_ENV):
        roots.append(Path(os.environ[DATA_DIR_ENV]).expanduser())
    roots.append(cache_root())
    return roots


def candidate_dirs(dataset: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for ``dataset``: each root itself, then its ``<dataset>/`` subfolder."""
    return [folder for root in data_roots(data_dir) for folder in (root, root / dataset)]


def default_dataset_dir(dataset: str) -> Path:
    """Default download folder: ``$ARCHSPEC_DATA_DIR/<dataset>``, else in ``cache_root()``."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser() / dataset
    return cache_root() / dataset
